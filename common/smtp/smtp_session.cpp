#include "smtp_session.hpp"

#include "delivery_status.hpp"
#include "log.hpp"

namespace o365 {

namespace {

using Clock = SmtpClient::Clock;

// One connection: connect .. AUTH with the session's current token.
void connect_and_authenticate(SmtpSession& s, const SmtpSettings& smtp, Clock::time_point deadline,
                              const Account& account) {
    s.client = std::make_unique<SmtpClient>(smtp, deadline);
    s.failure = s.client->open({account.mailbox, s.token.value});
}

// The forced refresh after `refused`. False (and s.failure a Cause::token
// failure) when no new token could be obtained.
bool refresh_token(SmtpSession& s, const Account& account, const SmtpReply& refused,
                   TokenProvider& tokens, Clock::time_point deadline) {
    auto t0 = Clock::now();
    try {
        s.token = tokens.refresh(account, s.token.value, deadline);
    } catch (const Error& e) {
        Failure f =
            local_failure(Cause::token, Stage::auth,
                          "the server refused the token of account " + account.name + " (" +
                              refused.text() + ") and no new one could be obtained: " + e.what(),
                          s.client->peer());
        f.error_class = e.error_class();
        s.failure = std::move(f);
        return false;
    }
    add_secret(s.token.value);
    s.token_refreshed = true;
    s.refresh_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return true;
}

}  // namespace

SmtpSession open_smtp_session(const SmtpSettings& smtp, Clock::time_point deadline,
                              const Account& account, const AccessToken& token,
                              TokenProvider& tokens, const SessionEvents& events) {
    SmtpSession s;
    s.token = token;
    // 1. The first connection with the token given.
    connect_and_authenticate(s, smtp, deadline, account);
    if (!s.failure || !token_refresh_may_help(*s.failure)) return s;
    // 2. A 535: the token may have been revoked. One forced refresh.
    SmtpReply refused = *s.failure->reply;
    s.client->quit();
    if (events.refreshing) events.refreshing(refused);
    if (!refresh_token(s, account, refused, tokens, deadline)) return s;
    if (events.refreshed) events.refreshed(s.token);
    // 3. One new connection with the new token.
    connect_and_authenticate(s, smtp, deadline, account);
    if (!s.failure || s.failure->stage != Stage::auth) return s;
    s.failure->after_refresh = true;
    // 4. Refused again: the cache backs off instead of asking Entra ID per attempt.
    if (token_refresh_may_help(*s.failure))
        tokens.reject(account, s.token.value,
                      "the server refused a fresh token of account " + account.name + ": " +
                          s.failure->reply->text());
    return s;
}

}  // namespace o365
