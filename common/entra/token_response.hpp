// token_response: reads the answers of the Entra ID token and devicecode
// endpoints (nlohmann-json).
//
// Contract:
// - read_token_answer(status, body, retry_after, account): for HTTP 200 with
//   an access token, returns the TokenGrant; for anything else throws the
//   OAuthError of classify_token_error() (oauth_errors.hpp), or
//   OAuthError(temporary) "malformed token answer from Entra: ..." when a 200
//   answer is not JSON, lacks a usable access_token (a non-empty string of
//   printable ASCII without spaces), has a token_type other than Bearer, or an
//   expires_in that is neither a positive integer nor a string of digits
//   (1 s .. 30 days). The body of a 200 answer is never quoted in a message.
// - Every access and refresh token read is registered with add_secret().
// - read_device_code_answer(): the same for the devicecode endpoint; interval
//   defaults to 5 s and expires_in to 900 s when absent; device_code is
//   registered as a secret (user_code is shown to the user and is not).
// Thread-safe (no shared state besides the log's secret list).
#pragma once

#include <string>
#include <string_view>

#include "token.hpp"

namespace o365 {

struct DeviceCode {
    std::string device_code;  // secret
    std::string user_code;
    std::string verification_uri;
    std::string message;  // Entra's text for the user
    int interval = 5;     // seconds between polls
    int expires_in = 900;
};

TokenGrant read_token_answer(long http_status, std::string_view body, int retry_after,
                             std::string_view account = {});

DeviceCode read_device_code_answer(long http_status, std::string_view body, int retry_after,
                                   std::string_view account = {});

}  // namespace o365
