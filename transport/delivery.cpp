#include "delivery.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "address.hpp"
#include "envelope.hpp"
#include "log.hpp"
#include "message_stream.hpp"
#include "method.hpp"
#include "sender_rules.hpp"

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

}  // namespace

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
        lines.push_back(qid + ": to=<" + printable(r) +
                        ">, account=" + (account.empty() ? "none" : account) +
                        ", relay=" + (relay.empty() ? "none" : relay) + ", delays=" + d +
                        ", dsn=" + outcome.dsn() + ", status=" + status + " (" + text + ")");
    }
    return lines;
}

bool nexthop_names_account(std::string_view nexthop, const std::vector<std::string>& recipients) {
    if (nexthop.empty() || nexthop.front() == '[' || nexthop.find(':') != std::string_view::npos)
        return false;
    std::string hop = lower_ascii(nexthop);
    for (const std::string& r : recipients) {
        auto at = r.rfind('@');
        if (at != std::string::npos && lower_ascii(std::string_view(r).substr(at + 1)) == hop)
            return false;
    }
    return true;
}

namespace {

// The account that sends, and the MAIL FROM address.
struct Sender {
    const Account* account = nullptr;
    std::string mail_from;
    bool null_sender = false;
};

using Context = MethodContext;

// 1. Addresses that can never be delivered fail before anything else.
void check_envelope(const TransportArgs& args) {
    if (auto f = envelope_failure(args.sender, args.recipients)) throw Fail{std::move(*f)};
}

// 2. The account: the null sender's account, the one -n names, or the sender's.
Sender resolve_null_sender(const Config& config) {
    NullSenderAccount n = null_sender_account(config);
    if (!n)
        fail(n.refusal_class == ErrorClass::permanent ? Cause::null_sender_refused : Cause::config,
             n.refusal, n.refusal_class);
    return Sender{n.account, n.account->mailbox, true};
}

const Account& named_account(const Context& c, const Account& named) {
    const std::string& sender = c.args.sender;
    if (!c.resolver.may_send_as(named, sender))
        fail(Cause::account_mismatch,
             "account " + named.name + " may not send as " + sender +
                 " (the transport's next hop names account " + named.name +
                 ", whose senders do not include " + sender +
                 "; fix the Postfix transport map or the account's senders)");
    return named;
}

[[noreturn]] void unknown_named_account(const Context& c) {
    const std::string hop = printable(c.args.nexthop);
    fail(Cause::config,
         "the transport's next hop names account " + hop + ", which is not configured in " +
             c.config.path + " (renamed or removed while mail for it was queued?); add [account " +
             hop +
             "] again, or fix the Postfix sender map (postmap) and route the queued mail "
             "anew with postsuper -r");
}

Sender resolve_account(const Context& c) {
    const TransportArgs& args = c.args;
    if (args.sender.empty()) return resolve_null_sender(c.config);
    if (const Account* named = c.config.find_account(args.nexthop))
        return Sender{&named_account(c, *named), args.sender, false};
    if (nexthop_names_account(args.nexthop, args.recipients)) unknown_named_account(c);
    const Account* account = c.resolver.resolve(args.sender);
    if (!account)
        fail(Cause::no_account,
             "sender " + args.sender + " is not allowed to send through this relay",
             ErrorClass::permanent);
    return Sender{account, args.sender, false};
}

// 3. The message, spooled: size and 8-bit known before MAIL FROM.
std::unique_ptr<MessageSpool> spool_message(const Context& c, const Sender& s, int message_fd,
                                            std::unique_ptr<HeaderRewriter>& rewriter) {
    if (s.null_sender) {
        const Resolver& resolver = c.resolver;
        const Account* account = s.account;
        rewriter = std::make_unique<HeaderRewriter>(
            "From",
            [&resolver, account](std::string_view v) {
                return null_sender_from(resolver, *account, v);
            },
            null_sender_from(resolver, *account, ""));
    }
    try {
        return std::make_unique<MessageSpool>(message_fd, "", rewriter.get());
    } catch (const Error& e) {
        fail(Cause::message_input, e.what());
    }
}

// 4. The account's delivery method (method.hpp): SMTP or Microsoft Graph.
MethodResult deliver_by_method(Context& c, const Sender& s, MessageSpool& spool) {
    return method_for(s.account->method)(c, MethodInput{*s.account, s.mail_from, spool});
}

// 5. The outcome: delivered, or one exit status for the delivery (temporary
// when any failure is).
Outcome map_outcome(const MethodResult& r, DeliveryReport& rep) {
    if (r.delivered) {
        rep.final_reply = r.final_reply;
        return *r.delivered;
    }
    std::optional<Outcome> first;
    for (const auto& f : r.failures) {
        Outcome o = decide(f);
        if (o.temporary()) return o;
        if (!first) first = o;
    }
    return first ? *first : decide(local_failure(Cause::internal, Stage::none, "no outcome"));
}

void run(Context& c, int message_fd) {
    auto t0 = Clock::now();
    // 1. The envelope.
    check_envelope(c.args);
    // 2. The account.
    Sender sender = resolve_account(c);
    c.rep.account = sender.account->name;
    // 3. The message.
    std::unique_ptr<HeaderRewriter> rewriter;
    std::unique_ptr<MessageSpool> spool = spool_message(c, sender, message_fd, rewriter);
    c.rep.delays[0] = seconds(t0, Clock::now());
    // 4. The account's delivery method.
    MethodResult result = deliver_by_method(c, sender, *spool);
    // 5. The outcome.
    c.rep.outcome = map_outcome(result, c.rep);
}

}  // namespace

DeliveryReport deliver(const Config& config, const Resolver& resolver, TokenProvider& tokens,
                       const TransportArgs& args, int message_fd) {
    DeliveryReport rep;
    rep.queue_id = args.queue_id;
    rep.recipients = args.recipients;
    Context c{
        config, resolver, tokens, args, Clock::now() + std::chrono::seconds(config.smtp.deadline),
        rep};
    try {
        run(c, message_fd);
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
