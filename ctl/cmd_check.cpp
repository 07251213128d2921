// o365relayctl check [ACCOUNT]: validates the config and the credential files,
// then for each account gets a token (through the shared cache) and opens an
// authenticated SMTP session (connect, STARTTLS, AUTH XOAUTH2) and QUITs
// without sending. Prints per account what worked and, for what failed, the
// cause and the fix.
#include <chrono>
#include <cstdio>
#include <ctime>

#include "ctl.hpp"
#include "error.hpp"
#include "oauth.hpp"
#include "secret_file.hpp"
#include "smtp_client.hpp"
#include "token_cache.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl check [ACCOUNT]\n"
    "Validates the config file and the credential files, then for each account (or\n"
    "the one named) gets an access token from Entra ID and opens an SMTP session to\n"
    "[smtp] host: connect, STARTTLS, AUTH XOAUTH2, QUIT. Nothing is sent.\n"
    "Exit 0 all passed, 1 a check failed, 78 the config file is invalid.\n";

// What an administrator must do about an SMTP failure while authenticating.
std::string smtp_fix(const Failure& f, int port) {
    std::string text = f.reply ? f.reply->text() : f.detail;
    auto has = [&](const char* s) { return text.find(s) != std::string::npos; };
    switch (f.cause) {
        case Cause::tls:
            return "the server's certificate was not trusted: check [smtp] host (use the DNS "
                   "name, smtp.office365.com) and [smtp] ca_file / the system trust store";
        case Cause::starttls_unavailable:
            return "the server does not offer STARTTLS: something between this host and "
                   "Office 365 strips it (a proxy or firewall inspecting SMTP); nothing was "
                   "sent in clear";
        case Cause::resolve:
        case Cause::connect:
        case Cause::timeout:
        case Cause::lost_connection:
            return "check DNS and that outbound TCP port " + std::to_string(port) +
                   " to [smtp] host is allowed";
        default:
            break;
    }
    if (has("5.7.139"))
        return "SMTP AUTH is disabled for the tenant or mailbox: Set-CASMailbox -Identity "
               "MAILBOX -SmtpClientAuthenticationDisabled $false (and check "
               "Set-TransportConfig -SmtpClientAuthenticationDisabled)";
    if (has("5.7.3") || has("535"))
        return "Exchange refused the token: for app-only, register the app's service principal "
               "in Exchange Online (New-ServicePrincipal) and grant it the mailbox "
               "(Add-MailboxPermission -AccessRights FullAccess); for delegated, the user must "
               "own the mailbox; the API permission must be SMTP.SendAsApp / SMTP.Send";
    if (has("5.1.8"))
        return "the mailbox is blocked for outbound spam: remove it from Restricted entities "
               "in the Microsoft Defender portal";
    if (has("4.3.2"))
        return "more than 3 connections for this mailbox: lower "
               "o365_destination_concurrency_limit";
    return "see docs/troubleshooting.md for this reply";
}

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
    auto accounts = select_accounts(*cfg, args.empty() ? "" : args[0]);
    if (accounts.empty()) return cfg->accounts.empty() ? kFailed : kUsage;
    auto client = std::make_shared<EntraClient>();
    TokenCache cache(cfg->relay.state_dir, client);
    int failed = 0;
    for (const Account* a : accounts) {
        std::printf("account %s (%s):\n", a->name.c_str(), a->mailbox.c_str());
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
            ++failed;
            continue;
        }
        auto deadline = SmtpClient::Clock::now() + std::chrono::seconds(cfg->smtp.deadline);
        SmtpClient smtp(cfg->smtp, deadline);
        auto failure = smtp.open(Credentials{a->mailbox, token.value});
        if (failure) {
            std::string what = failure->reply ? failure->reply->text() : failure->detail;
            std::printf("  FAIL  SMTP %s at %s: %s\n        fix: %s\n", smtp.peer().c_str(),
                        std::string(stage_name(failure->stage)).c_str(), what.c_str(),
                        smtp_fix(*failure, cfg->smtp.port).c_str());
            ++failed;
        } else {
            std::printf("  ok    SMTP %s: STARTTLS, AUTH XOAUTH2 as %s\n", smtp.peer().c_str(),
                        a->mailbox.c_str());
        }
        smtp.quit();
    }
    std::printf("%s\n", failed ? "check FAILED" : "check passed");
    return failed ? kFailed : kOk;
}

}  // namespace o365::ctl
