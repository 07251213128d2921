// oauth: the Entra ID token client (OAuth 2.0 v2.0 endpoints over HTTPS).
//
// Contract:
// - acquire(account, refresh_token): one token request.
//   * refresh_token empty: client credentials (grant_type=client_credentials,
//     scope = account.entra.scope) with the certificate assertion (jwt.hpp;
//     alg from [entra] assertion_alg) when certificate_file is set, else the
//     client secret read from client_secret_file. A delegated account without
//     a refresh token throws OAuthError(configuration) "... run `o365relayctl
//     login ACCOUNT`".
//   * refresh_token given: grant_type=refresh_token with the account's scope;
//     the answer's rotated refresh token is returned (the old one when Entra
//     sent none). Delegated requests carry the client credential only when one
//     is configured (confidential app); otherwise they are public-client requests.
// - start_device_code() / poll_device_code(): the device authorization grant
//   for `o365relayctl login`. Polling sleeps `interval` before each request
//   (through the injectable sleep), adds 5 s on slow_down, continues on
//   authorization_pending, and stops with the classed OAuthError on anything
//   else, or with OAuthError(permanent, "expired_token") once expires_in seconds
//   of sleeping have passed.
// - Errors: OAuthError only (network: http.hpp; Entra's answers:
//   oauth_errors.hpp; unreadable credential files: configuration).
// - Secrets: client secrets, assertions, device codes and every token are
//   registered with add_secret() before anything could log them. Debug lines
//   name the account, grant and endpoint host, never a secret.
// - Timeouts: [entra] http_timeout bounds connect and the whole request;
//   acquire_until() bounds both by the time left until its deadline too.
// - Network failures (http.hpp's HttpError) become OAuthError(http_status 0)
//   "token request to HOST: <cause>" ("device code request to ..." for the
//   device authorization endpoint).
// Thread-safe: an EntraClient holds no mutable state.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "config.hpp"
#include "token.hpp"
#include "token_response.hpp"

namespace o365 {

class EntraClient : public TokenSource {
  public:
    using Sleep = std::function<void(int seconds)>;

    TokenGrant acquire(const Account& account, const std::string& refresh_token) override;
    TokenGrant acquire_until(const Account& account, const std::string& refresh_token,
                             Deadline deadline) override;

    DeviceCode start_device_code(const Account& account);
    TokenGrant poll_device_code(const Account& account, const DeviceCode& code,
                                const Sleep& sleep = real_sleep);

    static void real_sleep(int seconds);

  private:
    TokenGrant acquire_request(const Account& account, const std::string& refresh_token,
                               std::optional<Deadline> deadline);
};

}  // namespace o365
