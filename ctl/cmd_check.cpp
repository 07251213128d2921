// o365relayctl check [ACCOUNT]: validates the config and the credential files,
// then for each account gets a token for the audience its method uses
// (through the shared cache) and proves it without sending anything:
// method = smtp: an authenticated SMTP session (connect, STARTTLS, AUTH
// XOAUTH2), then QUIT; method = graph: a Graph sendMail request for the
// mailbox whose MIME message has no recipient: Graph checks the token and the
// app's right to send as the mailbox (Mail.Send, Exchange RBAC for
// Applications scope or application access policy) first, so its answer 400
// ErrorInvalidRecipients proves the permission and nothing is sent.
// Prints per account what worked and, for what failed, the cause and the fix.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "base64.hpp"
#include "ctl.hpp"
#include "delivery_status.hpp"
#include "error.hpp"
#include "graph_client.hpp"
#include "graph_error.hpp"
#include "hints.hpp"
#include "http.hpp"
#include "oauth.hpp"
#include "secret_file.hpp"
#include "smtp_client.hpp"
#include "smtp_session.hpp"
#include "token_audience.hpp"
#include "token_cache.hpp"
#include "token_provider.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl check [ACCOUNT]\n"
    "Validates the config file and the credential files, then for each account (or\n"
    "the one named) gets an access token from Entra ID and proves it: method = smtp:\n"
    "an SMTP session to [smtp] host (connect, STARTTLS, AUTH XOAUTH2, QUIT);\n"
    "method = graph: a Graph sendMail request for the mailbox with a message that\n"
    "has no recipient (Graph checks Mail.Send first, then refuses the message).\n"
    "Nothing is sent.\n"
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

// A path segment, percent-encoded (everything but unreserved characters and '@').
std::string url_segment(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// The probe: a MIME message without any recipient, for sendMail.
std::string probe_message(const Account& a) {
    return "From: <" + a.mailbox +
           ">\r\nSubject: o365relayctl check (never sent: it has no recipient)\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
           "o365relayctl check: a message without recipients, which Microsoft Graph refuses.\r\n";
}

HttpResponse graph_probe(const Config& cfg, const Account& a, const AccessToken& token) {
    HttpRequest rq;
    rq.method = HttpMethod::post;
    std::string endpoint = cfg.graph.endpoint;
    while (!endpoint.empty() && endpoint.back() == '/')
        endpoint.pop_back();
    rq.url = endpoint + "/v1.0/users/" + url_segment(a.mailbox) + "/sendMail";
    rq.headers = {"Authorization: Bearer " + token.value, "Content-Type: text/plain"};
    rq.body = base64_encode(probe_message(a));
    rq.ca_file = cfg.graph.ca_file;
    rq.timeout = cfg.graph.http_timeout;
    rq.connect_timeout = std::min(cfg.graph.http_timeout, 30);
    rq.max_response = 64 * 1024;
    return http_request(rq);
}

// Step 2 for method = graph. `ta` is the account's Graph audience entry.
// Returns true when Graph accepted the token and the app may send as the mailbox.
bool check_graph(const Config& cfg, const Account& a, const Account& ta, TokenCache& cache,
                 AccessToken token) {
    std::string host = endpoint_host(cfg.graph.endpoint);
    for (int attempt = 0;; ++attempt) {
        HttpResponse r;
        try {
            r = graph_probe(cfg, a, token);
        } catch (const Error& e) {
            std::printf("  FAIL  Graph %s: %s\n", host.c_str(), e.what());
            std::printf(
                "        fix: check DNS, the proxy and that outbound HTTPS (port 443) to "
                "[graph] endpoint is allowed; [graph] ca_file / the system trust store\n");
            return false;
        }
        std::string peer = host + "[" + r.peer_ip + "]:" + std::to_string(r.peer_port);
        GraphError ge = parse_graph_error(r.body);
        if (r.status == 401 && attempt == 0) {
            // As a delivery does: the cached token may have been revoked.
            std::printf("  note  Graph refused the token (HTTP 401 %s); getting a new one\n",
                        ge.code.c_str());
            try {
                token = cache.force_refresh(ta);
            } catch (const Error& e) {
                std::printf("  FAIL  token: %s\n", e.what());
                return false;
            }
            continue;
        }
        if ((r.status == 400 && ge.code == "ErrorInvalidRecipients") || r.status == 202) {
            std::printf(
                "  ok    Graph %s: the app may send as %s (Mail.Send); the probe had no "
                "recipient, nothing was sent\n",
                peer.c_str(), a.mailbox.c_str());
            return true;
        }
        std::printf("  FAIL  Graph %s: HTTP %ld %s%s%s\n", peer.c_str(), r.status, ge.code.c_str(),
                    ge.code.empty() ? "" : ": ", ge.message.c_str());
        std::string fix =
            graph_fix(ge.code.empty() ? std::to_string(r.status) : ge.code, a.mailbox);
        if (fix.empty() && r.status == 429) fix = graph_fix("ApplicationThrottled", a.mailbox);
        std::printf("        fix: %s\n", fix.empty()
                                             ? "see troubleshooting.md, Microsoft Graph answers"
                                             : for_account(fix, a).c_str());
        return false;
    }
}

}  // namespace

int cmd_check(const Globals& g, const Args& args) {
    AccountCommand c = start_account_command(g, args, kHelp);
    if (c.exit >= 0) return c.exit;
    const auto& cfg = c.config;
    const auto& accounts = c.accounts;
    std::printf("config %s: ok (%zu accounts)\n", cfg->path.c_str(), cfg->accounts.size());
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
        // The token of the audience the account's method uses.
        const Audience audience = audience_of(*a);
        const Account ta = account_for_audience(*a, cfg->graph, audience);
        AccessToken token;
        try {
            // A check asks for the live answer: an earlier failure's backoff
            // (the administrator may just have fixed its cause) does not apply.
            auto entry = cache.peek(ta);
            bool in_backoff = entry && entry->backoff_until > std::time(nullptr);
            token = in_backoff ? cache.force_refresh(ta) : cache.get(ta);
            std::printf("  ok    token from Entra ID for %s (%s), valid %lld s\n",
                        std::string(audience_name(audience)).c_str(), a->entra.tenant.c_str(),
                        static_cast<long long>(token.expires_at - std::time(nullptr)));
        } catch (const Error& e) {
            std::printf("  FAIL  token: %s\n", e.what());
            if (std::string fix = token_fix(e); !fix.empty())
                std::printf("        fix: %s\n", fix.c_str());
            ++failed;
            continue;
        }
        if (audience == Audience::graph) {
            if (!check_graph(*cfg, *a, ta, cache, token)) ++failed;
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
