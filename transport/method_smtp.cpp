// The SMTP method (method.hpp): token for the SMTP audience, authenticated
// session with smtp_session.hpp's one refresh after a 535, one all-or-nothing
// transaction (delivery.hpp's contract).
#include <algorithm>

#include "log.hpp"
#include "method.hpp"
#include "smtp_session.hpp"

namespace o365 {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// 1. The token (SMTP audience: the account as configured).
std::optional<AccessToken> get_token(MethodContext& c, const Account& account,
                                     std::vector<Failure>& failures) {
    try {
        AccessToken token = c.tokens.get(account, c.deadline);
        add_secret(token.value);
        return token;
    } catch (const Error& e) {
        Failure f = local_failure(Cause::token, Stage::none,
                                  "no access token for account " + account.name + ": " + e.what());
        f.error_class = e.error_class();
        failures.push_back(std::move(f));
        return std::nullopt;
    }
}

// 2. Connect .. AUTH, with smtp_session.hpp's one refresh after a 535.
SmtpSession open_session(MethodContext& c, const Account& account, const AccessToken& token) {
    SessionEvents events;
    events.refreshing = [&c, &account](const SmtpReply& refused) {
        log_info(c.args.queue_id + ": account " + account.name + ": " + refused.text() +
                 "; refreshing the token once and retrying");
    };
    SmtpSession session =
        open_smtp_session(c.config.smtp, c.deadline, account, token, c.tokens, events);
    c.rep.relay = session.client->peer();
    c.rep.token_refreshed = session.token_refreshed;
    return session;
}

// 3. MAIL FROM .. end of data on the authenticated session.
MethodResult transmit(MethodContext& c, SmtpClient& client, const MethodInput& in) {
    const TransportArgs& args = c.args;
    if (args.recipients.size() > 1 && log_enabled(LogLevel::debug))
        log_debug(args.queue_id + ": " + std::to_string(args.recipients.size()) +
                  " recipients in one all-or-nothing transaction");
    Envelope env{in.mail_from, args.recipients, in.spool.eight_bit(), in.spool.size()};
    SendResult res = client.send(env, in.spool);
    if (res.delivered())
        return MethodResult{delivered(*res.final_reply, c.rep.relay), res.final_reply, {}};
    return MethodResult{std::nullopt, std::nullopt, std::move(res.failures)};
}

}  // namespace

MethodResult deliver_by_smtp(MethodContext& c, const MethodInput& in) {
    DeliveryReport& rep = c.rep;
    auto t0 = Clock::now();
    MethodResult r;
    std::optional<AccessToken> token = get_token(c, in.account, r.failures);
    if (!token) return r;
    auto t1 = Clock::now();
    SmtpSession session = open_session(c, in.account, *token);
    auto t2 = Clock::now();
    rep.delays[1] = seconds(t0, t1) + session.refresh_seconds;
    rep.delays[2] = std::max(0.0, seconds(t1, t2) - session.refresh_seconds);
    if (session.failure) {
        session.client->quit();
        r.failures.push_back(*session.failure);
        return r;
    }
    r = transmit(c, *session.client, in);
    rep.delays[3] = seconds(t2, Clock::now());
    session.client->quit();
    return r;
}

DeliveryMethodFn method_for(DeliveryMethod m) {
    struct Row {
        DeliveryMethod method;
        DeliveryMethodFn fn;
    };
    static constexpr Row kMethods[] = {
        {DeliveryMethod::smtp, deliver_by_smtp},
        {DeliveryMethod::graph, deliver_by_graph},
    };
    for (const auto& row : kMethods)
        if (row.method == m) return row.fn;
    return deliver_by_smtp;
}

}  // namespace o365
