#include "delivery.hpp"

#include <chrono>
#include <cstdio>

#include "address.hpp"
#include "log.hpp"
#include "message_stream.hpp"

namespace o365 {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// Stops the delivery with a failure (caught in deliver()).
struct Fail {
    Failure failure;
};

[[noreturn]] void fail(Cause c, const std::string& detail, ErrorClass cls = ErrorClass::temporary) {
    Failure f = local_failure(c, Stage::none, detail);
    f.error_class = cls;
    throw Fail{std::move(f)};
}

// The comment of an old-style From value: "addr (Comment)" -> "Comment".
std::string comment_of(std::string_view v) {
    std::size_t open = v.find('(');
    std::size_t close = v.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open)
        return "";
    std::string c(v.substr(open + 1, close - open - 1));
    while (!c.empty() && c.front() == ' ')
        c.erase(c.begin());
    while (!c.empty() && c.back() == ' ')
        c.pop_back();
    return c;
}

std::string quoted_phrase(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace

std::optional<std::string> rewrite_null_sender_from(const Resolver& resolver,
                                                    const Account& account,
                                                    std::string_view value) {
    auto addr = header_address(value);
    if (addr && resolver.may_send_as(account, *addr)) return std::nullopt;
    std::string display = header_display_name(value);
    if (display.empty()) {
        std::string c = comment_of(value);
        if (!c.empty()) display = quoted_phrase(c);
    }
    if (display.empty()) return "<" + account.mailbox + ">";
    return display + " <" + account.mailbox + ">";
}

std::vector<std::string> DeliveryReport::log_lines() const {
    std::string status = outcome.exit_status == kExOk ? "sent"
                         : outcome.temporary()        ? "deferred"
                                                      : "bounced";
    std::string text;
    if (outcome.exit_status == kExOk && final_reply) {
        text = final_reply->text();
    } else {
        std::size_t sp = outcome.status_line.find(' ');
        text = sp == std::string::npos ? outcome.status_line : outcome.status_line.substr(sp + 1);
    }
    char d[128];
    std::snprintf(d, sizeof d, "%.2f/%.2f/%.2f/%.2f", delays[0], delays[1], delays[2], delays[3]);
    std::vector<std::string> lines;
    std::string qid = queue_id.empty() ? "NOQUEUE" : queue_id;
    std::vector<std::string> rcpts = recipients;
    if (rcpts.empty()) rcpts.push_back("");
    for (const auto& r : rcpts) {
        lines.push_back(qid + ": to=<" + r + ">, account=" + (account.empty() ? "none" : account) +
                        ", relay=" + (relay.empty() ? "none" : relay) + ", delays=" + d +
                        ", dsn=" + outcome.dsn() + ", status=" + status + " (" + text + ")");
    }
    return lines;
}

namespace {

struct Attempt {
    std::unique_ptr<SmtpClient> client;
    std::optional<Failure> failure;
};

Outcome combine(const std::vector<Failure>& failures) {
    // One exit status covers the delivery: temporary when any failure is.
    std::optional<Outcome> first;
    for (const auto& f : failures) {
        Outcome o = decide(f);
        if (o.temporary()) return o;
        if (!first) first = o;
    }
    return first ? *first : decide(local_failure(Cause::internal, Stage::none, "no outcome"));
}

void run(const Config& config, const Resolver& resolver, TokenProvider& tokens,
         const TransportArgs& args, int message_fd, DeliveryReport& rep) {
    auto t0 = Clock::now();
    Clock::time_point deadline = t0 + std::chrono::seconds(config.smtp.deadline);

    // 1. The account.
    const Account* account = nullptr;
    std::string mail_from = args.sender;
    bool null_sender = args.sender.empty();
    if (null_sender) {
        if (config.policy.null_sender == NullSender::reject)
            fail(Cause::null_sender_refused,
                 "mail with the null sender <> is not relayed (null_sender = reject)",
                 ErrorClass::permanent);
        if (config.policy.null_sender_account.empty())
            fail(Cause::null_sender_refused,
                 "mail with the null sender <> is not relayed (no null_sender_account)",
                 ErrorClass::permanent);
        account = config.find_account(config.policy.null_sender_account);
        if (!account)
            fail(Cause::config, "null_sender_account " + config.policy.null_sender_account +
                                    " is not a configured account");
        mail_from = account->mailbox;
    } else if (const Account* named = config.find_account(args.nexthop)) {
        if (!resolver.may_send_as(*named, args.sender))
            fail(Cause::account_mismatch,
                 "account " + named->name + " may not send as " + args.sender +
                     " (the transport's next hop names account " + named->name +
                     ", whose senders do not include " + args.sender +
                     "; fix the Postfix transport map or the account's senders)");
        account = named;
    } else {
        account = resolver.resolve(args.sender);
        if (!account)
            fail(Cause::no_account,
                 "sender " + args.sender + " is not allowed to send through this relay",
                 ErrorClass::permanent);
    }
    rep.account = account->name;

    // 2. The message, spooled: size and 8-bit known before MAIL FROM.
    std::unique_ptr<HeaderRewriter> rewriter;
    if (null_sender) {
        rewriter =
            std::make_unique<HeaderRewriter>("From", [&resolver, account](std::string_view v) {
                return rewrite_null_sender_from(resolver, *account, v);
            });
    }
    std::unique_ptr<MessageSpool> spool;
    try {
        spool = std::make_unique<MessageSpool>(message_fd, "", rewriter.get());
    } catch (const Error& e) {
        fail(Cause::message_input, e.what());
    }
    auto t1 = Clock::now();
    rep.delays[0] = seconds(t0, t1);

    // 3. The token.
    AccessToken token;
    try {
        token = tokens.get(*account);
    } catch (const Error& e) {
        fail(Cause::token, "no access token for account " + account->name + ": " + e.what(),
             e.error_class());
    }
    add_secret(token.value);
    auto t2 = Clock::now();
    rep.delays[1] = seconds(t1, t2);

    // 4. Connect .. AUTH; after a 535, one forced refresh and one new connection.
    auto client = std::make_unique<SmtpClient>(config.smtp, deadline);
    auto f = client->open({account->mailbox, token.value});
    rep.relay = client->peer();
    if (f && token_refresh_may_help(*f)) {
        client->quit();
        log_info(args.queue_id + ": account " + account->name + ": " + f->reply->text() +
                 "; refreshing the token once and retrying");
        auto tr = Clock::now();
        try {
            token = tokens.refresh(*account, token.value);
        } catch (const Error& e) {
            fail(Cause::token,
                 "the server refused the token of account " + account->name + " (" +
                     f->reply->text() + ") and no new one could be obtained: " + e.what(),
                 e.error_class());
        }
        add_secret(token.value);
        rep.token_refreshed = true;
        rep.delays[1] += seconds(tr, Clock::now());
        client = std::make_unique<SmtpClient>(config.smtp, deadline);
        f = client->open({account->mailbox, token.value});
        rep.relay = client->peer();
        if (f) f->after_refresh = f->stage == Stage::auth;
    }
    auto t3 = Clock::now();
    rep.delays[2] = seconds(t2, t3) - (rep.delays[1] - seconds(t1, t2));
    if (rep.delays[2] < 0) rep.delays[2] = 0;
    if (f) {
        client->quit();
        rep.outcome = decide(*f);
        return;
    }

    // 5. The transaction.
    if (args.recipients.size() > 1 && log_enabled(LogLevel::debug))
        log_debug(args.queue_id + ": " + std::to_string(args.recipients.size()) +
                  " recipients in one all-or-nothing transaction");
    Envelope env{mail_from, args.recipients, spool->eight_bit(), spool->size()};
    SendResult res = client->send(env, *spool);
    rep.delays[3] = seconds(t3, Clock::now());
    client->quit();
    if (res.delivered()) {
        rep.final_reply = res.final_reply;
        rep.outcome = delivered(*res.final_reply, rep.relay);
        return;
    }
    rep.outcome = combine(res.failures);
}

}  // namespace

DeliveryReport deliver(const Config& config, const Resolver& resolver, TokenProvider& tokens,
                       const TransportArgs& args, int message_fd) {
    DeliveryReport rep;
    rep.queue_id = args.queue_id;
    rep.recipients = args.recipients;
    try {
        run(config, resolver, tokens, args, message_fd, rep);
    } catch (const Fail& f) {
        Failure failure = f.failure;
        failure.peer = rep.relay;
        rep.outcome = decide(failure);
    } catch (const std::exception& e) {
        rep.outcome = decide(local_failure(Cause::internal, Stage::none,
                                           std::string("internal error: ") + e.what()));
    } catch (...) {
        rep.outcome = decide(
            local_failure(Cause::internal, Stage::none, "internal error: unknown exception"));
    }
    return rep;
}

}  // namespace o365
