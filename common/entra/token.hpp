// token: the values and the interface between the token cache and whatever
// obtains tokens (oauth.hpp's EntraClient in production, fakes in unit tests).
//
// Contract: TokenSource::acquire() performs one token request for the account
// (client credentials, or refresh_token grant when `refresh_token` is not
// empty) and returns the grant, or throws OAuthError (a classed Error). It
// never logs a token. Implementations say whether they are thread-safe.
// acquire_until() is the same request ended by a deadline: its timeouts are
// bounded by the time left, and it throws OAuthError(temporary) once the
// deadline has passed. The default implementation calls acquire() (for
// sources that cannot block); sources that make network requests override it.
#pragma once

#include <cstdint>
#include <string>

#include "config.hpp"
#include "deadline.hpp"
#include "error.hpp"

namespace o365 {

struct TokenGrant {
    std::string access_token;
    std::int64_t expires_in = 0;  // seconds, as Entra said
    std::string refresh_token;    // empty when none was returned (client credentials)
};

// An error from Entra or from the way to it. error_class(): temporary for
// network trouble, timeouts, 5xx, 429 and temporarily_unavailable;
// configuration for invalid_client, invalid_grant, unauthorized_client,
// invalid_scope and the like (an administrator must fix the credentials).
// what() is one line: "<oauth error>: AADSTSnnnn: <description first sentence>
// (hint: <what to fix>)" or the network cause.
class OAuthError : public Error {
  public:
    OAuthError(ErrorClass c, const std::string& message, std::string oauth_error = {},
               std::string aadsts = {}, int http_status = 0, int retry_after = 0)
        : Error(c, message),
          oauth_error_(std::move(oauth_error)),
          aadsts_(std::move(aadsts)),
          http_status_(http_status),
          retry_after_(retry_after) {}
    const std::string& oauth_error() const { return oauth_error_; }  // "invalid_client", ...
    const std::string& aadsts() const { return aadsts_; }            // "AADSTS7000215" or ""
    int http_status() const { return http_status_; }                 // 0: no HTTP answer
    int retry_after() const { return retry_after_; }                 // seconds, 0: none

  private:
    std::string oauth_error_;
    std::string aadsts_;
    int http_status_;
    int retry_after_;
};

class TokenSource {
  public:
    virtual ~TokenSource() = default;
    virtual TokenGrant acquire(const Account& account, const std::string& refresh_token) = 0;
    virtual TokenGrant acquire_until(const Account& account, const std::string& refresh_token,
                                     Deadline deadline) {
        (void)deadline;
        return acquire(account, refresh_token);
    }
};

}  // namespace o365
