// o365relayctl token status [ACCOUNT] | token refresh ACCOUNT
// status: one line per account and token audience (token_audience.hpp);
// refresh: the audience the account's delivery method needs.
#include <cstdio>
#include <ctime>

#include "ctl.hpp"
#include "error.hpp"
#include "oauth.hpp"
#include "token_audience.hpp"
#include "token_cache.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl token status [ACCOUNT]\n"
    "       o365relayctl token refresh ACCOUNT\n"
    "status: per account, one line per token audience (SMTP, Graph): the cached\n"
    "        token's expiry, when it was obtained and the last refresh error\n"
    "        (exit 0; 78 for a bad config).\n"
    "refresh: gets a new token from Entra ID now for the audience the account's\n"
    "        method uses (smtp: SMTP, graph: Graph), ignoring the failure backoff\n"
    "        (exit 0 ok, 75 temporary failure, 78 credentials or config refused).\n";

std::string when(std::int64_t t) {
    if (t <= 0) return "never";
    char buf[64];
    std::time_t tt = static_cast<std::time_t>(t);
    struct tm tmv;
    ::gmtime_r(&tt, &tmv);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tmv);
    return buf;
}

std::string span(std::int64_t s) {
    bool neg = s < 0;
    if (neg) s = -s;
    char buf[64];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600),
                      (long long)(s % 3600 / 60));
    else
        std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    return neg ? std::string(buf) + " ago" : "in " + std::string(buf);
}

// One line for the account's cache entry of one audience: state, expiry,
// when obtained, the refresh token (delegated), the last error. True when it
// holds a usable token (more than 120 s left and no failed refresh recorded).
bool print_audience(const Account& a, const GraphSettings& graph, Audience audience,
                    const TokenCache& cache) {
    const bool in_use = audience_of(a) == audience;
    const Account ta = account_for_audience(a, graph, audience);
    auto e = cache.peek(ta);
    std::int64_t now = std::time(nullptr);
    std::string line =
        "  " + std::string(audience_name(audience)) + " token" +
        (in_use ? " (used by method = " +
                      std::string(audience == Audience::graph ? "graph" : "smtp") + "): "
                : ": ");
    if (!e || e->access_token.empty()) {
        line += "none cached";
    } else {
        line += std::string(e->expires_at - now > 120 ? "valid" : "expired") + ", expires " +
                when(e->expires_at) + " (" + span(e->expires_at - now) +
                "), obtained: " + when(e->obtained_at);
    }
    if (a.flow == Flow::delegated && (in_use || (e && !e->refresh_token.empty())))
        line += e && !e->refresh_token.empty()
                    ? ", refresh token: stored"
                    : ", refresh token: none: run `o365relayctl login " + a.name + "`";
    if (e && e->last_error)
        line += ", last error: " + when(e->last_error->at) + " " +
                std::string(to_string(e->last_error->error_class)) + ": " + e->last_error->message;
    else if (e || in_use)
        line += ", last error: none";
    std::printf("%s\n", line.c_str());
    return e && !e->access_token.empty() && e->expires_at - now > 120 && !e->last_error;
}

// The account, then one line per audience (SMTP, Graph): the entry its method
// uses first. True when the audience its method uses holds a usable token.
bool print_status(const Account& a, const GraphSettings& graph, const TokenCache& cache) {
    std::printf("account %s (%s, %s, method = %s)\n", a.name.c_str(), a.mailbox.c_str(),
                a.flow == Flow::delegated ? "delegated" : "client_credentials",
                a.method == DeliveryMethod::graph ? "graph" : "smtp");
    const Audience used = audience_of(a);
    const bool usable = print_audience(a, graph, used, cache);
    print_audience(a, graph, used == Audience::smtp ? Audience::graph : Audience::smtp, cache);
    return usable;
}

}  // namespace

int cmd_token(const Globals& g, const Args& args) {
    if (wants_help(args) || args.empty()) {
        std::fputs(kHelp, args.empty() ? stderr : stdout);
        return args.empty() ? kUsage : kOk;
    }
    const std::string& sub = args[0];
    if (sub != "status" && sub != "refresh") {
        std::fprintf(stderr, "o365relayctl: unknown token command '%s'\n%s", sub.c_str(), kHelp);
        return kUsage;
    }
    if (args.size() > 2 || (sub == "refresh" && args.size() != 2)) {
        std::fputs(kHelp, stderr);
        return kUsage;
    }
    auto cfg = load_or_report(g);
    if (!cfg) return kConfig;
    auto accounts = select_accounts(*cfg, args.size() == 2 ? args[1] : "");
    if (accounts.empty()) return kUsage;
    TokenCache cache(cfg->relay.state_dir, std::make_shared<EntraClient>());
    if (sub == "status") {
        bool all_usable = true;
        for (const Account* a : accounts)
            all_usable = print_status(*a, cfg->graph, cache) && all_usable;
        return all_usable ? kOk : kFailed;
    }
    // The token the account's delivery method uses.
    const Account& a = *accounts[0];
    const Audience audience = audience_of(a);
    try {
        AccessToken t = cache.force_refresh(account_for_audience(a, cfg->graph, audience));
        std::printf("account %s: new token obtained for %s, expires %s (%s)\n", a.name.c_str(),
                    std::string(audience_name(audience)).c_str(), when(t.expires_at).c_str(),
                    span(t.expires_at - std::time(nullptr)).c_str());
        return kOk;
    } catch (const Error& e) {
        std::printf("account %s: refresh failed: %s\n", a.name.c_str(), e.what());
        return e.error_class() == ErrorClass::temporary ? kTempfail : kConfig;
    }
}

}  // namespace o365::ctl
