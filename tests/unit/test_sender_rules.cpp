// Tests of common/sender_rules: ONE table of null-sender From values fed to
// both callers, the milter's Transaction (end-of-message header edits applied
// as the MTA applies them) and the transport's mechanism (HeaderRewriter +
// MessageSpool with null_sender_from, the spooled header bytes read back):
// both must give the same From. Then the null-sender account rule and the
// From/Sender alignment rule.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "message_stream.hpp"
#include "policy.hpp"
#include "rate_limiter.hpp"
#include "sender_rules.hpp"

using namespace o365;

namespace {

const char* kBase = R"([relay]
state_dir = /tmp/o365relay-test-sender-rules
log = stderr
user = root

[entra]
tenant = contoso.onmicrosoft.com
client_id = 11111111-2222-3333-4444-555555555555
client_secret_file = /nonexistent/secret

[account noreply]
mailbox = noreply@contoso.com
senders = noreply@contoso.com, @apps.contoso.com

[account alerts]
mailbox = alerts@contoso.com
)";

std::shared_ptr<const Config> make_config(const std::string& policy_lines) {
    return parse_config(std::string(kBase) + "\n[policy]\n" + policy_lines + "\n", "test.conf");
}

using Headers = std::vector<std::pair<std::string, std::string>>;

// The From values of `headers`, in order.
std::vector<std::string> froms(const Headers& headers) {
    std::vector<std::string> r;
    for (const auto& [n, v] : headers)
        if (n == "From") r.push_back(v);
    return r;
}

// Applies milter edits as the MTA does: index counts the headers of that name.
void apply_edits(Headers& headers, const std::vector<HeaderEdit>& edits) {
    for (const HeaderEdit& e : edits) {
        if (e.kind == HeaderEdit::Kind::add) {
            headers.emplace_back(e.name, e.value);
            continue;
        }
        int seen = 0;
        for (auto it = headers.begin(); it != headers.end(); ++it) {
            if (it->first != e.name || ++seen != e.index) continue;
            if (e.kind == HeaderEdit::Kind::remove)
                headers.erase(it);
            else
                it->second = e.value;
            break;
        }
    }
}

// 1. The milter: a null-sender transaction, its edits applied to the headers.
std::vector<std::string> milter_froms(const std::shared_ptr<const Config>& cfg,
                                      const std::vector<std::string>& from_values) {
    auto policy = std::make_shared<Policy>(cfg, std::make_shared<RateLimiter>());
    Transaction t(policy, ConnectionFacts{"192.0.2.10", "", true});
    Headers headers;
    for (const std::string& v : from_values)
        headers.emplace_back("From", v);
    headers.emplace_back("To", "bob@example.org");
    BOOST_TEST((t.on_mail("<>").action == Action::continue_));
    t.on_rcpt("<bob@example.org>");
    for (const auto& [n, v] : headers)
        t.on_header(n, v);
    t.on_body(6);
    Decision d = t.on_eom();
    BOOST_TEST((d.action == Action::accept), d.reply());
    BOOST_TEST(d.new_sender.value_or("") == "<noreply@contoso.com>");
    apply_edits(headers, d.edits);
    return froms(headers);
}

// 2. The transport: the message through HeaderRewriter + MessageSpool with
// null_sender_from as the callback; the From fields of the spooled header.
std::vector<std::string> transport_froms(const std::shared_ptr<const Config>& cfg,
                                         const std::vector<std::string>& from_values) {
    Resolver resolver(cfg);
    const Account& account = *cfg->find_account("noreply");
    HeaderRewriter rw(
        "From", [&](std::string_view v) { return null_sender_from(resolver, account, v); },
        null_sender_from(resolver, account, ""));
    std::string input;
    for (const std::string& v : from_values)
        input += "From: " + v + "\n";
    input += "To: bob@example.org\n\nbody\n";

    char tmpl[] = "/tmp/o365-sender-rules.XXXXXX";
    int fd = ::mkstemp(tmpl);
    BOOST_REQUIRE(fd >= 0);
    ::unlink(tmpl);
    BOOST_REQUIRE(::write(fd, input.data(), input.size()) == static_cast<ssize_t>(input.size()));
    ::lseek(fd, 0, SEEK_SET);
    MessageSpool spool(fd, "", &rw);
    ::close(fd);
    std::string wire;
    for (auto c = spool.next_chunk(); !c.empty(); c = spool.next_chunk())
        wire.append(c);

    std::vector<std::string> r;
    std::string_view head = std::string_view(wire).substr(0, wire.find("\r\n\r\n") + 2);
    while (!head.empty()) {
        std::string_view line = head.substr(0, head.find("\r\n"));
        head.remove_prefix(line.size() + 2);
        if (line.rfind("From:", 0) != 0) continue;
        line.remove_prefix(5);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        r.emplace_back(line);
    }
    return r;
}

struct FromRow {
    const char* name;
    std::vector<std::string> from;  // the From header values of the message
    std::vector<std::string> want;  // the From values sent
};

const std::vector<FromRow>& from_rows() {
    static const std::vector<FromRow> rows = {
        {"old-style comment kept as a quoted phrase",
         {"MAILER-DAEMON@relay.example (Mail Delivery System)"},
         {"\"Mail Delivery System\" <noreply@contoso.com>"}},
        {"display name kept as written",
         {"Mail Delivery System <MAILER-DAEMON@relay.example>"},
         {"Mail Delivery System <noreply@contoso.com>"}},
        {"quoted display name with comma and @",
         {"\"Postmaster, relay@example\" <postmaster@relay.example>"},
         {"\"Postmaster, relay@example\" <noreply@contoso.com>"}},
        {"encoded-word display name kept bare",
         {"=?utf-8?q?J=C3=B6rg?= <MAILER-DAEMON@relay.example>"},
         {"=?utf-8?q?J=C3=B6rg?= <noreply@contoso.com>"}},
        {"encoded word in a comment stays decodable",
         {"MAILER-DAEMON@relay.example (=?utf-8?q?Syst=C3=A8me?=)"},
         {"=?utf-8?q?Syst=C3=A8me?= <noreply@contoso.com>"}},
        {"comment with quotes escaped",
         {"(Say \"hi\")"},
         {"\"Say \\\"hi\\\"\" <noreply@contoso.com>"}},
        {"bare address", {"MAILER-DAEMON@relay.example"}, {"<noreply@contoso.com>"}},
        {"aligned: kept", {"App <x@apps.contoso.com>"}, {"App <x@apps.contoso.com>"}},
        {"several addresses, second foreign: one mailbox",
         {"noreply@contoso.com, ceo@victim.example"},
         {"<noreply@contoso.com>"}},
        {"several addresses, first foreign with display name",
         {"Boss <ceo@victim.example>, noreply@contoso.com"},
         {"Boss <noreply@contoso.com>"}},
        {"several addresses, all aligned: kept",
         {"noreply@contoso.com, App <x@apps.contoso.com>"},
         {"noreply@contoso.com, App <x@apps.contoso.com>"}},
        {"group syntax with a foreign member",
         {"Team: noreply@contoso.com, ceo@victim.example;"},
         {"<noreply@contoso.com>"}},
        {"empty group", {"Undisclosed recipients:;"}, {"<noreply@contoso.com>"}},
        {"display name holding an aligned address does not count",
         {"\"noreply@contoso.com\" <ceo@victim.example>"},
         {"\"noreply@contoso.com\" <noreply@contoso.com>"}},
        {"several From headers: each judged alone",
         {"MAILER-DAEMON@relay.example", "x@apps.contoso.com"},
         {"<noreply@contoso.com>", "x@apps.contoso.com"}},
        {"no From at all: the mailbox is added", {}, {"<noreply@contoso.com>"}},
    };
    return rows;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sender_rules)

BOOST_AUTO_TEST_CASE(null_sender_from_same_in_milter_and_transport) {
    auto cfg = make_config("null_sender = rewrite\nnull_sender_account = noreply");
    for (const FromRow& r : from_rows()) {
        BOOST_TEST_CONTEXT(r.name) {
            std::vector<std::string> m = milter_froms(cfg, r.from);
            std::vector<std::string> t = transport_froms(cfg, r.from);
            BOOST_TEST(m == r.want, boost::test_tools::per_element());
            BOOST_TEST(t == r.want, boost::test_tools::per_element());
        }
    }
}

BOOST_AUTO_TEST_CASE(null_sender_from_keeps_leading_space_form) {
    auto cfg = make_config("null_sender_account = noreply");
    Resolver res(cfg);
    const Account& a = *cfg->find_account("noreply");
    // The transport passes the field body with its leading space.
    BOOST_TEST(null_sender_from(res, a, " MAILER-DAEMON@relay.example (Mail Delivery System)")
                   .value_or("") == "\"Mail Delivery System\" <noreply@contoso.com>");
    BOOST_TEST(!null_sender_from(res, a, " noreply@contoso.com").has_value());
    BOOST_TEST(null_sender_from(res, a, "").value_or("") == "<noreply@contoso.com>");
}

BOOST_AUTO_TEST_CASE(null_sender_account_rule) {
    struct Row {
        const char* policy;
        const char* account;  // nullptr: refused
        const char* refusal_has;
    };
    const Row rows[] = {
        {"null_sender = rewrite\nnull_sender_account = alerts", "alerts", ""},
        {"null_sender_account = noreply", "noreply", ""},
        {"null_sender = reject\nnull_sender_account = alerts", nullptr, "null_sender = reject"},
        {"null_sender = rewrite", nullptr, "no null_sender_account"},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.policy) {
            auto cfg = make_config(r.policy);  // ns.account points into it
            NullSenderAccount ns = null_sender_account(*cfg);
            BOOST_TEST(static_cast<bool>(ns) == (r.account != nullptr));
            if (r.account) {
                BOOST_TEST(ns.account->name == r.account);
                BOOST_TEST(ns.refusal.empty());
            } else {
                BOOST_TEST((ns.refusal_class == ErrorClass::permanent));
                BOOST_TEST(ns.refusal.find("null sender <>") != std::string::npos, ns.refusal);
                BOOST_TEST(ns.refusal.find(r.refusal_has) != std::string::npos, ns.refusal);
            }
        }
    }
    // A config that names no such account (load_config refuses it; built by hand here).
    auto cfg = std::make_shared<Config>(*make_config("null_sender_account = alerts"));
    cfg->policy.null_sender_account = "ghost";
    NullSenderAccount ns = null_sender_account(*cfg);
    BOOST_TEST(!ns);
    BOOST_TEST((ns.refusal_class == ErrorClass::configuration));
    BOOST_TEST(ns.refusal.find("ghost") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(alignment_rule) {
    auto cfg = make_config("");
    Resolver res(cfg);
    const Account& a = *cfg->find_account("noreply");
    struct Row {
        const char* field;
        const char* value;
        const char* refusal_has;  // nullptr: aligned
    };
    const Row rows[] = {
        {"From", "noreply@contoso.com", nullptr},
        {"From", "No Reply <NOREPLY@Contoso.COM>", nullptr},
        {"From", "noreply@contoso.com, App <x@apps.contoso.com>", nullptr},
        {"From", "Team: noreply@contoso.com, y@apps.contoso.com;", nullptr},
        {"From", "\"ceo@victim.example, x\" <noreply@contoso.com>", nullptr},
        {"From", "noreply@contoso.com, ceo@victim.example",
         "header From ceo@victim.example is not an address account noreply may send as"},
        {"From", "Team: noreply@contoso.com, ceo@victim.example;", "ceo@victim.example"},
        {"From", "noreply@contoso.com,, (c) ,ceo@victim.example", "ceo@victim.example"},
        {"From", "<@relay.example:ceo@victim.example>", "ceo@victim.example"},
        {"From", "noreply@contoso.com (unterminated, ceo@victim.example", "unterminated"},
        {"From", "Undisclosed:;", "holds no address"},
        {"Sender", "Boss <ceo@victim.example>", "header Sender ceo@victim.example"},
        {"Sender", "noreply@contoso.com, alerts@contoso.com", "alerts@contoso.com"},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.field << ": " << r.value) {
            auto why = alignment_refusal(res, a, r.field, r.value);
            BOOST_TEST(why.has_value() == (r.refusal_has != nullptr));
            if (why && r.refusal_has)
                BOOST_TEST(why->find(r.refusal_has) != std::string::npos, *why);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
