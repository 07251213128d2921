// o365relayctl status [ACCOUNT]: one table an administrator reads in five
// seconds (per account: method, token state, sent / deferred / bounced in 24 h
// and in total, throttle replies, token requests / failures, recipients in
// 24 h against 10,000, messages in the last minute against 30), then for each
// account its last token error and last failed delivery with the fix
// (hints.hpp). Reads the token cache and the counters; asks nobody.
// Exit 0; 64 unknown account; 78 bad config.
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "account_state.hpp"
#include "ctl.hpp"
#include "hints.hpp"
#include "oauth.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl status [ACCOUNT]\n"
    "Per account: delivery method, token state, deliveries sent / deferred / bounced\n"
    "(last 24 h / total), throttle replies, token requests / failures, recipients in\n"
    "the last 24 h (Exchange's limit: 10000) and messages in the last minute (limit:\n"
    "30); then the last token error and the last failed delivery with the fix.\n"
    "Reads the token cache and the counters in [relay] state_dir; asks nobody.\n"
    "Exit 0; 64 unknown account; 78 the config file is invalid.\n";

using Row = std::vector<std::string>;

std::string pair(std::uint64_t a, std::uint64_t b) {
    return std::to_string(a) + "/" + std::to_string(b);
}

Row header() {
    return {"ACCOUNT",         "METHOD",    "TOKEN",          "SENT 24h/all", "DEFERRED 24h/all",
            "BOUNCED 24h/all", "THROTTLES", "TOKEN REQ/FAIL", "RCPTS 24h",    "MSGS 1min"};
}

Row row(const AccountState& s) {
    const CounterSnapshot& c = s.counters;
    return {s.account->name,
            s.method,
            s.token_summary(),
            pair(c.sent_24h, c.sent_total),
            pair(c.deferred_24h, c.deferred_sum()),
            pair(c.bounced_24h, c.bounced_sum()),
            std::to_string(c.throttles_sum()),
            pair(c.token_requests_total, c.token_failures_total),
            pair(c.recipients_24h, kRecipientsPerDay),
            pair(c.messages_last_minute, kMessagesPerMinute)};
}

void print_table(const std::vector<Row>& rows) {
    std::vector<std::size_t> width(rows.front().size(), 0);
    for (const Row& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
    for (const Row& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        std::printf("%s\n", line.c_str());
    }
}

// What to do about a failed delivery of this reason class when the reply has no hint.
std::string reason_fix(ReasonClass r, const Config& cfg, const Account& a) {
    switch (r) {
        case ReasonClass::network:
            return "check DNS and that outbound TCP port " + std::to_string(cfg.smtp.port) +
                   " to [smtp] host is allowed; o365relayctl check " + a.name;
        case ReasonClass::token:
            return "o365relayctl check " + a.name + " shows the cause and the fix";
        case ReasonClass::throttle:
            return "Microsoft throttles the mailbox (at most 3 connections, 30 messages a "
                   "minute): keep the o365 transport's process limit at 3 or less; Postfix "
                   "retries";
        case ReasonClass::account:
            return "an account-level block: o365relayctl check " + a.name;
        case ReasonClass::sender:
            return "check the account's senders in o365relay.conf and Exchange's Send As rights";
        case ReasonClass::recipient:
            return "the recipient was refused: nothing to fix on the relay";
        case ReasonClass::content:
            return "the message was refused (size or content): nothing to fix on the relay";
        case ReasonClass::config:
            return "fix what the reason names (o365relay.conf, master.cf, the sender map); "
                   "o365relayctl check";
        case ReasonClass::other:
            break;
    }
    return "see the delivery's line in the mail log";
}

void print_problems(const AccountState& s, const Config& cfg) {
    const Account& a = *s.account;
    const CounterSnapshot& c = s.counters;
    if (!s.token_error.empty())
        std::printf("%s: token cache: %s\n", a.name.c_str(), s.token_error.c_str());
    if (!s.counters_error.empty())
        std::printf("%s: counters: %s\n", a.name.c_str(), s.counters_error.c_str());
    if (s.last_error) {
        std::printf("%s: token refresh failed %s (%s): %s\n", a.name.c_str(),
                    utc_time(s.last_error->at).c_str(),
                    std::string(to_string(s.last_error->error_class)).c_str(),
                    s.last_error->message.c_str());
        std::string fix = token_fix(Error(s.last_error->error_class, s.last_error->message));
        if (fix.empty()) fix = "o365relayctl check " + a.name + " (it ignores the backoff)";
        std::printf("  fix: %s\n", fix.c_str());
    } else if (s.refresh_token_missing) {
        std::printf("%s: no refresh token\n  fix: o365relayctl login %s\n", a.name.c_str(),
                    a.name.c_str());
    }
    if (c.last_failure_at != 0) {
        std::printf("%s: last failed delivery %s, %s (%s): %s\n", a.name.c_str(),
                    utc_time(c.last_failure_at).c_str(),
                    std::string(result_name(c.last_failure_result)).c_str(),
                    std::string(reason_name(c.last_failure_reason)).c_str(),
                    c.last_failure.c_str());
        std::string fix = reply_fix(c.last_failure, a.mailbox);
        if (fix.empty()) fix = reason_fix(c.last_failure_reason, cfg, a);
        std::printf("  fix: %s\n", fix.c_str());
    }
}

}  // namespace

int cmd_status(const Globals& g, const Args& args) {
    AccountCommand c = start_account_command(g, args, kHelp);
    if (c.exit >= 0) return c.exit;
    const auto& cfg = c.config;
    const auto& accounts = c.accounts;
    // 1. Gather: the token cache and the counters, as stored.
    TokenCache cache(cfg->relay.state_dir, std::make_shared<EntraClient>());
    Counters counters(cfg->relay.state_dir);
    const std::int64_t now = std::time(nullptr);
    std::vector<AccountState> states;
    for (const Account* a : accounts)
        states.push_back(gather(*a, cache, counters, now));
    // 2. The table.
    std::vector<Row> rows{header()};
    for (const auto& s : states)
        rows.push_back(row(s));
    print_table(rows);
    // 3. The problems, each with its fix.
    std::printf("\n");
    bool any = false;
    for (const auto& s : states) {
        any = any || s.last_error || s.refresh_token_missing || !s.token_error.empty() ||
              !s.counters_error.empty() || s.counters.last_failure_at != 0;
        print_problems(s, *cfg);
    }
    if (!any) std::printf("no errors recorded\n");
    return kOk;
}

}  // namespace o365::ctl
