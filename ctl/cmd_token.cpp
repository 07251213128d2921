// o365relayctl token status [ACCOUNT] | token refresh ACCOUNT
#include <cstdio>
#include <ctime>

#include "ctl.hpp"
#include "error.hpp"
#include "oauth.hpp"
#include "token_cache.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl token status [ACCOUNT]\n"
    "       o365relayctl token refresh ACCOUNT\n"
    "status: per account, the cached token's expiry, when it was obtained and the last\n"
    "        refresh error. Exit 0 when every account shown has a usable token (more\n"
    "        than 120 s left, last refresh not failed), 1 when one has none or its last\n"
    "        refresh failed (for monitoring), 78 for a bad config.\n"
    "refresh: gets a new token from Entra ID now, ignoring the failure backoff\n"
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

// Prints the account's entry; true when it holds a usable token (more than
// 120 s left and no failed refresh recorded).
bool print_status(const Account& a, const TokenCache& cache) {
    std::printf("account %s (%s, %s)\n", a.name.c_str(), a.mailbox.c_str(),
                a.flow == Flow::delegated ? "delegated" : "client_credentials");
    auto e = cache.peek(a);
    std::int64_t now = std::time(nullptr);
    if (!e || e->access_token.empty()) {
        std::printf("  token:      none cached\n");
    } else {
        const char* state = e->expires_at - now > 120 ? "valid" : "expired";
        std::printf("  token:      %s, expires %s (%s)\n", state, when(e->expires_at).c_str(),
                    span(e->expires_at - now).c_str());
        std::printf("  obtained:   %s\n", when(e->obtained_at).c_str());
    }
    if (a.flow == Flow::delegated)
        std::printf("  refresh token: %s\n",
                    e && !e->refresh_token.empty()
                        ? "stored"
                        : ("none: run `o365relayctl login " + a.name + "`").c_str());
    if (e && e->last_error)
        std::printf("  last error: %s %s: %s\n", when(e->last_error->at).c_str(),
                    std::string(to_string(e->last_error->error_class)).c_str(),
                    e->last_error->message.c_str());
    else
        std::printf("  last error: none\n");
    return e && !e->access_token.empty() && e->expires_at - now > 120 && !e->last_error;
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
    if (cfg->accounts.empty() && args.size() == 1) {
        std::printf("no accounts in %s\n", cfg->path.c_str());
        return kOk;
    }
    auto accounts = select_accounts(*cfg, args.size() == 2 ? args[1] : "");
    if (accounts.empty()) return kUsage;
    TokenCache cache(cfg->relay.state_dir, std::make_shared<EntraClient>());
    if (sub == "status") {
        bool all_usable = true;
        for (const Account* a : accounts)
            all_usable = print_status(*a, cache) && all_usable;
        return all_usable ? kOk : kFailed;
    }
    const Account& a = *accounts[0];
    try {
        AccessToken t = cache.force_refresh(a);
        std::printf("account %s: new token obtained, expires %s (%s)\n", a.name.c_str(),
                    when(t.expires_at).c_str(), span(t.expires_at - std::time(nullptr)).c_str());
        return kOk;
    } catch (const Error& e) {
        std::printf("account %s: refresh failed: %s\n", a.name.c_str(), e.what());
        return e.error_class() == ErrorClass::temporary ? kTempfail : kConfig;
    }
}

}  // namespace o365::ctl
