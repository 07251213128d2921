// oauth_errors: the ONE place that turns an unsuccessful answer of the Entra
// ID token or devicecode endpoint into a classed OAuthError.
//
// Contract: classify_token_error(status, body, retry_after, account) never
// throws (beyond bad_alloc) and returns an OAuthError whose class is
//   temporary      HTTP 429 (retry_after kept), 5xx, errors
//                  temporarily_unavailable and server_error, AADSTS codes that
//                  pass by themselves (90055 tenant throttled, 50196 loop
//                  detected), device-flow authorization_pending and slow_down,
//                  and any answer that is not Entra's JSON error (malformed);
//   permanent      device-flow authorization_declined, expired_token,
//                  bad_verification_code (this sign-in cannot succeed; start again);
//   configuration  every other OAuth error (invalid_client, invalid_grant,
//                  unauthorized_client, invalid_scope, invalid_request,
//                  consent_required, ...): an administrator must act.
// what() is one line: "<error>: AADSTSnnnn: <first line of error_description>"
// followed by " [HTTP nnn]" / " [retry after N s]" for throttling and server
// errors and " (hint: ...)" for codes aadsts.hpp knows (ACCOUNT replaced by the
// account name when given). Text from the peer is cut at the first line, control
// characters removed and the length bounded. The body of a 2xx answer is never
// quoted (it may hold a token). Thread-safe (no shared state).
#pragma once

#include <string_view>

#include "token.hpp"

namespace o365 {

OAuthError classify_token_error(long http_status, std::string_view body, int retry_after,
                                std::string_view account = {});

}  // namespace o365
