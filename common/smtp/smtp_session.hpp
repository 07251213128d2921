// smtp_session: an authenticated SMTP session for an account, and the one rule
// about a refused token, shared by the transport and `o365relayctl check`:
// connect, STARTTLS, AUTH XOAUTH2 with the token given (smtp_client.hpp); when
// AUTH answers a 535 that token_refresh_may_help() (any 535 but 5.7.139, which
// no token can fix), the token may have been revoked: refresh it ONCE through
// the TokenProvider and retry on a NEW connection. When the new token is
// refused with a 535 again, tokens.reject() is told, so that the cache's
// backoff applies to a persistent 535 (no token request per attempt). This is
// the only retry, and it happens before MAIL FROM: no message is ever sent
// twice (docs/design.md section "Temporary or permanent").
//
// Failure: values, never exceptions (beyond bad_alloc): the Failure of the
// last attempt (Cause::server_reply, ..., with after_refresh set for an AUTH
// failure after the forced refresh), or Cause::token (Stage::auth, the token
// error's class) when no new token could be obtained. Every token call gets the
// deadline. Thread-safety: one session per thread; the TokenProvider must be
// thread-safe if shared.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "config.hpp"
#include "failure.hpp"
#include "smtp_client.hpp"
#include "token_provider.hpp"

namespace o365 {

// Optional observers, for a log line (transport) or a note on the terminal (check).
struct SessionEvents {
    // AUTH refused the token with `reply`: the token is refreshed once.
    std::function<void(const SmtpReply& reply)> refreshing;
    // The forced refresh gave `token`.
    std::function<void(const AccessToken& token)> refreshed;
};

struct SmtpSession {
    // The last connection, never null: authenticated when `failure` is empty,
    // else the caller QUITs it (peer() names the server either way).
    std::unique_ptr<SmtpClient> client;
    std::optional<Failure> failure;
    AccessToken token;             // the token of the last AUTH
    bool token_refreshed = false;  // the forced refresh happened
    double refresh_seconds = 0;    // time spent obtaining the new token
};

// Connect .. AUTH as `account` with `token`; the deadline bounds the
// connections (SmtpClient) and every token call.
SmtpSession open_smtp_session(const SmtpSettings& smtp, SmtpClient::Clock::time_point deadline,
                              const Account& account, const AccessToken& token,
                              TokenProvider& tokens, const SessionEvents& events = {});

}  // namespace o365
