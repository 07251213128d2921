// o365relayctl check [ACCOUNT]: validates the config and the credential files,
// then for each account gets a token (through the shared cache) and opens an
// authenticated SMTP session (connect, STARTTLS, AUTH XOAUTH2) and QUITs
// without sending. Prints per account what worked and, for what failed, the
// cause and the fix.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "ctl.hpp"
#include "delivery_status.hpp"
#include "error.hpp"
#include "hints.hpp"
#include "oauth.hpp"
#include "secret_file.hpp"
#include "smtp_client.hpp"
#include "smtp_session.hpp"
#include "token_cache.hpp"
#include "token_provider.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl check [ACCOUNT]\n"
    "Validates the config file and the credential files, then for each account (or\n"
    "the one named) gets an access token from Entra ID and opens an SMTP session to\n"
    "[smtp] host: connect, STARTTLS, AUTH XOAUTH2, QUIT. Nothing is sent.\n"
    "Exit 0 all passed; 1 a check failed (among them: no usable token, because the\n"
    "token request failed now: fit for monitoring); 78 the config file is invalid.\n";

bool check_files(const Account& a) {
    bool ok = true;
    auto check = [&](const std::string& path, const char* what, bool secret) {
        if (path.empty()) return;
        try {
            if (secret) {
                check_secret_file(path);
            } else if (FILE* f = std::fopen(path.c_str(), "r")) {
                std::fclose(f);
            } else {
                throw ConfigError(path + ": cannot read " + what);
            }
            std::printf("  ok    %s %s\n", what, path.c_str());
        } catch (const Error& e) {
            std::printf("  FAIL  %s: %s\n", what, e.what());
            ok = false;
        }
    };
    check(a.entra.certificate_file, "certificate", false);
    check(a.entra.private_key_file, "private key", true);
    check(a.entra.client_secret_file, "client secret", true);
    return ok;
}

}  // namespace

int cmd_check(const Globals& g, const Args& args) {
    if (wants_help(args)) {
        std::fputs(kHelp, stdout);
        return kOk;
    }
    if (args.size() > 1) {
        std::fputs(kHelp, stderr);
        return kUsage;
    }
    auto cfg = load_or_report(g);
    if (!cfg) return kConfig;
    std::printf("config %s: ok (%zu accounts)\n", cfg->path.c_str(), cfg->accounts.size());
    if (cfg->accounts.empty()) {
        std::printf(
            "no [account NAME] section: nothing relays through Microsoft 365\n"
            "check FAILED\n");
        return kFailed;
    }
    auto accounts = select_accounts(*cfg, args.empty() ? "" : args[0]);
    if (accounts.empty()) return kUsage;
    auto client = std::make_shared<EntraClient>();
    TokenCache cache(cfg->relay.state_dir, client);
    int failed = 0;
    for (const Account* a : accounts) {
        std::printf("account %s (%s):\n", a->name.c_str(), a->mailbox.c_str());
        std::printf("  cloud %s: Entra ID %s, SMTP %s, Graph %s\n",
                    std::string(cloud_preset(a->entra.cloud).name).c_str(),
                    a->entra.authority.c_str(), cfg->smtp.host.c_str(),
                    cfg->graph.endpoint.c_str());
        std::printf("  proxy Entra ID %s, Graph %s, SMTP none (SMTP cannot use an HTTP proxy)\n",
                    a->entra.proxy.empty() ? "none" : a->entra.proxy.c_str(),
                    cfg->graph.proxy.empty() ? "none" : cfg->graph.proxy.c_str());
        if (!check_files(*a)) {
            ++failed;
            continue;
        }
        AccessToken token;
        try {
            // A check asks for the live answer: an earlier failure's backoff
            // (the administrator may just have fixed its cause) does not apply.
            auto entry = cache.peek(*a);
            bool in_backoff = entry && entry->backoff_until > std::time(nullptr);
            token = in_backoff ? cache.force_refresh(*a) : cache.get(*a);
            std::printf("  ok    token from Entra ID (%s), valid %lld s\n", a->entra.tenant.c_str(),
                        static_cast<long long>(token.expires_at - std::time(nullptr)));
        } catch (const Error& e) {
            std::printf("  FAIL  token: %s\n", e.what());
            if (std::string fix = token_fix(e); !fix.empty())
                std::printf("        fix: %s\n", fix.c_str());
            ++failed;
            continue;
        }
        auto deadline = SmtpClient::Clock::now() + std::chrono::seconds(cfg->smtp.deadline);
        CacheTokenProvider tokens(cache);
        SessionEvents events;
        events.refreshing = [](const SmtpReply& refused) {
            // As a delivery does: a 535 may mean the cached token was revoked.
            std::printf("  note  AUTH refused the token (%s); getting a new one\n",
                        refused.text().c_str());
        };
        events.refreshed = [](const AccessToken& fresh) {
            std::printf("  ok    new token from Entra ID, valid %lld s\n",
                        static_cast<long long>(fresh.expires_at - std::time(nullptr)));
        };
        SmtpSession session = open_smtp_session(cfg->smtp, deadline, *a, token, tokens, events);
        auto& smtp = session.client;
        auto& failure = session.failure;
        if (failure && failure->cause == Cause::token) {
            std::printf("  FAIL  token: %s\n", failure->detail.c_str());
            if (std::string fix = token_fix(Error(failure->error_class, failure->detail));
                !fix.empty())
                std::printf("        fix: %s\n", fix.c_str());
            ++failed;
            continue;
        }
        if (failure) {
            std::string what = failure->reply ? failure->reply->text() : failure->detail;
            std::printf("  FAIL  SMTP %s at %s: %s\n        fix: %s\n", smtp->peer().c_str(),
                        std::string(stage_name(failure->stage)).c_str(), what.c_str(),
                        smtp_fix(*failure, cfg->smtp.port, a->mailbox).c_str());
            ++failed;
        } else {
            std::printf("  ok    SMTP %s: STARTTLS, AUTH XOAUTH2 as %s\n", smtp->peer().c_str(),
                        a->mailbox.c_str());
            std::string others;
            for (const auto& s : a->senders)
                if (s != a->mailbox) others += (others.empty() ? "" : ", ") + s;
            if (!others.empty())
                std::printf(
                    "  note  Send As for %s is checked by Exchange only when a message "
                    "is sent: o365relayctl send-test -f SENDER %s RECIPIENT\n",
                    others.c_str(), a->name.c_str());
        }
        smtp->quit();
    }
    std::printf("%s\n", failed ? "check FAILED" : "check passed");
    return failed ? kFailed : kOk;
}

}  // namespace o365::ctl
