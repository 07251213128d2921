// o365relayctl login ACCOUNT: device-code sign-in for a delegated account.
#include <cstdio>

#include "ctl.hpp"
#include "error.hpp"
#include "oauth.hpp"
#include "token_audience.hpp"
#include "token_cache.hpp"

namespace o365::ctl {

namespace {
const char* kHelp =
    "usage: o365relayctl login ACCOUNT\n"
    "Device-code sign-in for an account with flow = delegated: prints a code and a URL;\n"
    "sign in there as the account's mailbox user. An account with method = graph\n"
    "signs in for Microsoft Graph (Mail.Send offline_access), otherwise for SMTP.Send.\n"
    "The refresh token is stored in the token cache (never printed). Exit 0 ok,\n"
    "1 sign-in declined or expired, 75 Entra unreachable, 78 bad config or credentials.\n";
}

int cmd_login(const Globals& g, const Args& args) {
    if (wants_help(args)) {
        std::fputs(kHelp, stdout);
        return kOk;
    }
    if (args.size() != 1) {
        std::fputs(kHelp, stderr);
        return kUsage;
    }
    auto cfg = load_or_report(g);
    if (!cfg) return kConfig;
    auto accounts = select_accounts(*cfg, args[0]);
    if (accounts.empty()) return kUsage;
    const Account& a = *accounts[0];
    if (a.flow != Flow::delegated) {
        std::fprintf(stderr,
                     "o365relayctl: account %s uses flow = client_credentials: it needs no "
                     "sign-in (set flow = delegated for a user's mailbox)\n",
                     a.name.c_str());
        return kUsage;
    }
    // The refresh token is for the audience the account's method uses: a Graph
    // account signs in for the Graph delegated scope (Mail.Send offline_access)
    // and the grant is stored in its Graph entry (<account>+graph.json).
    const Account ta = account_for_audience(a, cfg->graph, audience_of(a));
    auto client = std::make_shared<EntraClient>();
    try {
        DeviceCode dc = client->start_device_code(ta);
        std::printf("%s\n", dc.message.empty() ? ("To sign in, open " + dc.verification_uri +
                                                  " and enter the code " + dc.user_code)
                                                     .c_str()
                                               : dc.message.c_str());
        std::printf("Waiting for the sign-in of %s (code expires in %d s)...\n", a.mailbox.c_str(),
                    static_cast<int>(dc.expires_in));
        std::fflush(stdout);
        TokenGrant grant = client->poll_device_code(ta, dc);
        if (grant.refresh_token.empty()) {
            std::printf(
                "account %s: Entra returned no refresh token; is offline_access in the "
                "scope?\n",
                a.name.c_str());
            return kFailed;
        }
        TokenCache cache(cfg->relay.state_dir, client);
        cache.store(ta, grant);
        std::printf(
            "account %s: signed in (%s scope %s); refresh token stored in "
            "%s/tokens/%s.json\n",
            a.name.c_str(), std::string(audience_name(audience_of(a))).c_str(),
            ta.entra.scope.c_str(), cfg->relay.state_dir.c_str(), ta.name.c_str());
        return kOk;
    } catch (const OAuthError& e) {
        std::printf("account %s: sign-in failed: %s\n", a.name.c_str(), e.what());
        if (e.oauth_error() == "authorization_declined" || e.oauth_error() == "expired_token" ||
            e.oauth_error() == "bad_verification_code")
            return kFailed;
        return e.error_class() == ErrorClass::temporary ? kTempfail : kConfig;
    } catch (const Error& e) {
        std::printf("account %s: sign-in failed: %s\n", a.name.c_str(), e.what());
        return e.error_class() == ErrorClass::temporary ? kTempfail : kConfig;
    }
}

}  // namespace o365::ctl
