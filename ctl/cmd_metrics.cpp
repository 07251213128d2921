// o365relayctl metrics: what `status` shows, in the Prometheus text exposition
// format (version 0.0.4) for node_exporter's textfile collector (docs/monitoring.md):
// every family has its HELP and TYPE lines, counters end in _total, every
// sample carries an account label (values escaped), every reason class and
// throttle kind is always present (a series that appears late breaks rate()).
// Exit 0; 75 when the token cache or the counters of an account could not be
// read (what could be read is still printed: write to a temporary file and
// rename it only on exit 0); 78 bad config.
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "account_state.hpp"
#include "ctl.hpp"
#include "oauth.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl metrics\n"
    "Prints every account's counters and token state in the Prometheus text format,\n"
    "for node_exporter's textfile collector (see docs/monitoring.md). Asks nobody.\n"
    "Exit 0; 75 an account's token cache or counters could not be read (the rest is\n"
    "printed); 78 the config file is invalid.\n";

// A label value of the exposition format: \\, \" and \n escaped.
std::string escape(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

struct Sample {
    std::string labels;  // extra labels after account, e.g. ,reason="network"
    double value;
};

// One metric family: its name, type, help and the samples of one account.
struct Family {
    const char* name;
    const char* type;  // counter | gauge
    const char* help;
    std::function<std::vector<Sample>(const AccountState&)> samples;
};

std::vector<Sample> one(double v) {
    return {Sample{"", v}};
}

template <std::size_t N, class Name>
std::vector<Sample> by(const std::array<std::uint64_t, N>& values, const char* label, Name name) {
    std::vector<Sample> out;
    for (std::size_t i = 0; i < N; ++i)
        out.push_back(Sample{std::string(",") + label + "=\"" + std::string(name(i)) + "\"",
                             static_cast<double>(values[i])});
    return out;
}

std::string_view reason_at(std::size_t i) {
    return reason_name(static_cast<ReasonClass>(i));
}
std::string_view throttle_at(std::size_t i) {
    return throttle_name(static_cast<ThrottleKind>(i));
}

// The families, declared once; main() drives them.
const std::vector<Family>& families() {
    using S = const AccountState&;
    static const std::vector<Family> f = {
        {"o365relay_account_info", "gauge", "Configured account: mailbox and delivery method.",
         [](S s) {
             return std::vector<Sample>{Sample{
                 ",mailbox=\"" + escape(s.account->mailbox) + "\",method=\"" + s.method + "\"", 1}};
         }},
        {"o365relay_deliveries_sent_total", "counter", "Deliveries accepted by Microsoft 365.",
         [](S s) { return one(double(s.counters.sent_total)); }},
        {"o365relay_deliveries_deferred_total", "counter",
         "Deliveries deferred (Postfix retries), by reason class.",
         [](S s) { return by(s.counters.deferred_total, "reason", reason_at); }},
        {"o365relay_deliveries_bounced_total", "counter",
         "Deliveries bounced (permanent failure), by reason class.",
         [](S s) { return by(s.counters.bounced_total, "reason", reason_at); }},
        {"o365relay_throttles_total", "counter",
         "Throttling replies (SMTP 432 4.3.2, SMTP 4.7.500, Graph 429), by kind.",
         [](S s) { return by(s.counters.throttles_total, "kind", throttle_at); }},
        {"o365relay_token_requests_total", "counter", "Token requests to Entra ID.",
         [](S s) { return one(double(s.counters.token_requests_total)); }},
        {"o365relay_token_failures_total", "counter", "Token requests to Entra ID that failed.",
         [](S s) { return one(double(s.counters.token_failures_total)); }},
        {"o365relay_recipients_sent_total", "counter", "Recipients of sent deliveries.",
         [](S s) { return one(double(s.counters.recipients_total)); }},
        {"o365relay_deliveries_sent_last_24h", "gauge", "Deliveries sent in the last 24 hours.",
         [](S s) { return one(double(s.counters.sent_24h)); }},
        {"o365relay_deliveries_deferred_last_24h", "gauge",
         "Deliveries deferred in the last 24 hours.",
         [](S s) { return one(double(s.counters.deferred_24h)); }},
        {"o365relay_deliveries_bounced_last_24h", "gauge",
         "Deliveries bounced in the last 24 hours.",
         [](S s) { return one(double(s.counters.bounced_24h)); }},
        {"o365relay_recipients_last_24h", "gauge",
         "Recipients of sent deliveries in the last 24 hours (rolling).",
         [](S s) { return one(double(s.counters.recipients_24h)); }},
        {"o365relay_recipients_last_24h_limit", "gauge",
         "Exchange Online's limit of recipients per mailbox and rolling 24 hours.",
         [](S) { return one(double(kRecipientsPerDay)); }},
        {"o365relay_messages_last_minute", "gauge", "Messages sent in the last minute.",
         [](S s) { return one(double(s.counters.messages_last_minute)); }},
        {"o365relay_messages_last_minute_limit", "gauge",
         "Exchange Online's limit of messages per mailbox and minute.",
         [](S) { return one(double(kMessagesPerMinute)); }},
        {"o365relay_token_usable", "gauge",
         "1 when a token with more than 120 s left is cached and no refresh failed.",
         [](S s) { return one(s.usable() ? 1 : 0); }},
        {"o365relay_token_expiry_seconds", "gauge",
         "Seconds until the cached token expires (negative: expired; 0: none).",
         [](S s) { return one(double(s.token_seconds_left)); }},
        {"o365relay_token_refresh_failed", "gauge",
         "1 when the last token refresh failed (recorded in the token cache).",
         [](S s) { return one(s.last_error ? 1 : 0); }},
        {"o365relay_token_backoff_seconds", "gauge",
         "Seconds before the next automatic token request after failures.",
         [](S s) { return one(double(s.backoff_seconds_left)); }},
        {"o365relay_last_failed_delivery_timestamp_seconds", "gauge",
         "Unix time of the last deferred or bounced delivery (0: none).",
         [](S s) { return one(double(s.counters.last_failure_at)); }},
        {"o365relay_state_readable", "gauge",
         "1 when the account's token cache entry and counters could be read.",
         [](S s) { return one(s.token_error.empty() && s.counters_error.empty() ? 1 : 0); }},
    };
    return f;
}

void print_family(const Family& f, const std::vector<AccountState>& states) {
    std::printf("# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.type);
    for (const auto& s : states)
        for (const Sample& x : f.samples(s))
            std::printf("%s{account=\"%s\"%s} %.17g\n", f.name, escape(s.account->name).c_str(),
                        x.labels.c_str(), x.value);
}

}  // namespace

int cmd_metrics(const Globals& g, const Args& args) {
    if (wants_help(args)) {
        std::fputs(kHelp, stdout);
        return kOk;
    }
    if (!args.empty()) {
        std::fputs(kHelp, stderr);
        return kUsage;
    }
    auto cfg = load_or_report(g);
    if (!cfg) return kConfig;
    // 1. Gather every account.
    TokenCache cache(cfg->relay.state_dir, std::make_shared<EntraClient>());
    Counters counters(cfg->relay.state_dir);
    const std::int64_t now = std::time(nullptr);
    std::vector<AccountState> states;
    for (const Account& a : cfg->accounts)
        states.push_back(gather(a, cache, counters, now));
    // 2. Print every family.
    for (const Family& f : families())
        print_family(f, states);
    // 3. Say what could not be read.
    int status = kOk;
    for (const auto& s : states) {
        for (const std::string* e : {&s.token_error, &s.counters_error}) {
            if (e->empty()) continue;
            std::fprintf(stderr, "o365relayctl: account %s: %s\n", s.account->name.c_str(),
                         e->c_str());
            status = kTempfail;
        }
    }
    return status;
}

}  // namespace o365::ctl
