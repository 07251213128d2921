#include <boost/test/unit_test.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "policy.hpp"
#include "rate_limiter.hpp"

using namespace o365;

namespace {

const char* kBase = R"([relay]
state_dir = /tmp/o365relay-test-policy
log = stderr
user = root

[entra]
tenant = contoso.onmicrosoft.com
client_id = 11111111-2222-3333-4444-555555555555
client_secret_file = /nonexistent/secret

[account noreply]
mailbox = noreply@contoso.com
senders = noreply@contoso.com, @apps.contoso.com, "quoted.name"@contoso.com

[account alerts]
mailbox = alerts@Contoso.COM
add_header = X-Department: operations
add_header = X-Env: prod

[account graphy]
mailbox = graph@contoso.com
method = graph

[milter]
tag_header = X-O365Relay-Account
)";

// Microsoft Graph's limit for one message (graph_limits.hpp), less the
// allowance the milter keeps for headers added after it.
constexpr long long kGraphCounted = 3145728 - Transaction::kAddedHeaderAllowance;

std::shared_ptr<const Config> make_config(const std::string& policy_lines) {
    return parse_config(std::string(kBase) + "\n[policy]\n" + policy_lines + "\n", "test.conf");
}

struct Fixture {
    std::shared_ptr<std::int64_t> now = std::make_shared<std::int64_t>(1'700'000'040);
    std::shared_ptr<RateLimiter> limiter;
    std::shared_ptr<const Policy> policy;
    std::optional<std::string> health_error;  // what the probe answers

    explicit Fixture(const std::string& policy_lines = "") {
        auto n = now;
        limiter = std::make_shared<RateLimiter>([n] { return *n; });
        policy = std::make_shared<Policy>(make_config(policy_lines), limiter,
                                          [this](const Account&) { return health_error; });
    }
    Transaction tx(bool smtp = true) {
        return Transaction(policy, ConnectionFacts{"192.0.2.10", "", smtp});
    }
};

struct Msg {
    std::string sender;
    std::vector<std::string> mail_args;
    std::vector<std::string> rcpts;
    std::vector<std::pair<std::string, std::string>> headers;
    std::size_t body = 100;
};

// Where a message ended.
struct Outcome {
    std::string stage;  // "mail", "body", "eom"
    Decision d;
    std::vector<Decision> rcpt;  // one per recipient
};

Outcome run(Transaction& t, const Msg& m) {
    Outcome o;
    o.d = t.on_mail(m.sender, m.mail_args);
    o.stage = "mail";
    if (o.d.is_final()) return o;
    for (const auto& r : m.rcpts)
        o.rcpt.push_back(t.on_rcpt(r));
    for (const auto& [n, v] : m.headers)
        t.on_header(n, v);
    o.d = t.on_body(m.body);
    o.stage = "body";
    if (o.d.is_final()) return o;
    o.d = t.on_eom();
    o.stage = "eom";
    return o;
}

Msg simple(std::string sender, std::string from) {
    return Msg{std::move(sender), {}, {"<bob@example.org>"}, {{"From", std::move(from)}}, 100};
}

struct Case {
    const char* name;
    const char* policy;
    Msg msg;
    const char* stage;
    Action action;
    const char* code;  // "" when none
    const char* enh;
    const char* rule;
    const char* account;
    const char* text_has;  // substring of the text ("" = no check)
};

const std::vector<Case>& cases() {
    static const std::vector<Case> v = {
        {"exact sender accepted", "", simple("<noreply@contoso.com>", "noreply@contoso.com"), "eom",
         Action::accept, "", "", "", "noreply", ""},
        {"mixed-case domain and local part", "",
         simple("<NoReply@CONTOSO.Com>", "No Reply <NOREPLY@Contoso.COM>"), "eom", Action::accept,
         "", "", "", "noreply", ""},
        {"domain entry", "", simple("<app1@Apps.Contoso.com>", "app2@apps.contoso.com"), "eom",
         Action::accept, "", "", "", "noreply", ""},
        {"mailbox is implied sender", "", simple("alerts@contoso.com", "alerts@CONTOSO.com"), "eom",
         Action::accept, "", "", "", "alerts", ""},
        {"quoted local part", "",
         simple("<\"quoted.name\"@contoso.com>", "\"Q\" <\"quoted.name\"@contoso.com>"), "eom",
         Action::accept, "", "", "", "noreply", ""},
        {"quoted local part with space via domain entry", "",
         simple("<\"john doe\"@apps.contoso.com>", "\"Doe, John\" <\"john doe\"@apps.contoso.com>"),
         "eom", Action::accept, "", "", "", "noreply", ""},
        {"SMTPUTF8 sender via domain entry", "",
         Msg{"<j\xC3\xB6rg@apps.contoso.com>",
             {"SMTPUTF8", "BODY=8BITMIME"},
             {"<m\xC3\xBCller@example.de>"},
             {{"From", "J\xC3\xB6rg <j\xC3\xB6rg@apps.contoso.com>"}},
             100},
         "eom", Action::accept, "", "", "", "noreply", ""},
        {"unknown sender rejected", "", simple("<x@y.example>", "x@y.example"), "mail",
         Action::reject, "550", "5.7.1", "unknown_sender", "",
         "sender x@y.example is not allowed to send through this relay"},
        {"unknown sender tempfail", "unknown_sender = tempfail",
         simple("<x@y.example>", "x@y.example"), "mail", Action::tempfail, "451", "4.7.1",
         "unknown_sender", "", "try again later"},
        {"unknown sender accepted without account", "unknown_sender = accept",
         simple("<x@y.example>", "x@y.example"), "eom", Action::accept, "", "", "", "", ""},
        {"sender of another domain's subdomain is unknown", "",
         simple("<a@sub.apps.contoso.com>", "a@sub.apps.contoso.com"), "mail", Action::reject,
         "550", "5.7.1", "unknown_sender", "", ""},
        {"unparseable sender is unknown", "", simple("<not-an-address>", "x@y"), "mail",
         Action::reject, "550", "5.7.1", "unknown_sender", "", "not-an-address"},
        {"null sender rejected", "null_sender = reject", simple("<>", "MAILER-DAEMON@host"), "mail",
         Action::reject, "550", "5.7.1", "null_sender", "", "null sender <>"},
        {"null sender rewrite without account", "null_sender = rewrite",
         simple("<>", "MAILER-DAEMON@host"), "mail", Action::reject, "550", "5.7.1", "null_sender",
         "", "no null_sender_account"},
        {"null sender rewrite (empty argument form)", "null_sender_account = alerts",
         simple("", "MAILER-DAEMON@host"), "eom", Action::accept, "", "", "", "alerts", ""},
        {"From misaligned", "", simple("<noreply@contoso.com>", "ceo@contoso.com"), "eom",
         Action::reject, "550", "5.7.1", "require_from_alignment", "noreply",
         "header From ceo@contoso.com is not an address account noreply may send as"},
        {"From misaligned with display name and comment", "",
         simple("<noreply@contoso.com>",
                "\"noreply@contoso.com\" <ceo@contoso.com> (really noreply@contoso.com)"),
         "eom", Action::reject, "550", "5.7.1", "require_from_alignment", "noreply",
         "ceo@contoso.com"},
        {"From aligned with display name containing another address", "",
         simple("<noreply@contoso.com>", "\"ceo@contoso.com\" <noreply@contoso.com> (c)"), "eom",
         Action::accept, "", "", "", "noreply", ""},
        {"From alignment off", "require_from_alignment = no",
         simple("<noreply@contoso.com>", "ceo@contoso.com"), "eom", Action::accept, "", "", "",
         "noreply", ""},
        {"second From header misaligned", "",
         Msg{"<noreply@contoso.com>",
             {},
             {"<bob@example.org>"},
             {{"From", "noreply@contoso.com"}, {"from", "ceo@contoso.com"}},
             100},
         "eom", Action::reject, "550", "5.7.1", "require_from_alignment", "noreply", ""},
        {"Sender header misaligned", "",
         Msg{"<noreply@contoso.com>",
             {},
             {"<bob@example.org>"},
             {{"From", "noreply@contoso.com"}, {"Sender", "Boss <ceo@contoso.com>"}},
             100},
         "eom", Action::reject, "550", "5.7.1", "require_from_alignment", "noreply",
         "header Sender ceo@contoso.com"},
        {"From with two addresses, the second foreign", "",
         simple("<noreply@contoso.com>", "noreply@contoso.com, ceo@victim.example"), "eom",
         Action::reject, "550", "5.7.1", "require_from_alignment", "noreply",
         "header From ceo@victim.example is not an address account noreply may send as"},
        {"From group with a foreign member", "",
         simple("<noreply@contoso.com>", "Team: noreply@contoso.com, ceo@victim.example;"), "eom",
         Action::reject, "550", "5.7.1", "require_from_alignment", "noreply", "ceo@victim.example"},
        {"From with two aligned addresses", "",
         simple("<noreply@contoso.com>", "noreply@contoso.com, App <a@apps.contoso.com>"), "eom",
         Action::accept, "", "", "", "noreply", ""},
        {"Sender with a foreign second address", "",
         Msg{"<noreply@contoso.com>",
             {},
             {"<bob@example.org>"},
             {{"From", "noreply@contoso.com"},
              {"Sender", "noreply@contoso.com, \"x\" <ceo@victim.example>"}},
             100},
         "eom", Action::reject, "550", "5.7.1", "require_from_alignment", "noreply",
         "header Sender ceo@victim.example"},
        {"From of the other account", "", simple("<noreply@contoso.com>", "alerts@contoso.com"),
         "eom", Action::reject, "550", "5.7.1", "require_from_alignment", "noreply", ""},
        {"SIZE exactly at the limit", "max_message_size = 1000",
         Msg{"<noreply@contoso.com>", {"SIZE=1000"}, {"<b@example.org>"}, {}, 10}, "eom",
         Action::accept, "", "", "", "noreply", ""},
        {"SIZE one over the limit", "max_message_size = 1000",
         Msg{"<noreply@contoso.com>", {"BODY=8BITMIME", "size=1001"}, {"<b@example.org>"}, {}, 10},
         "mail", Action::reject, "552", "5.3.4", "max_message_size", "noreply",
         "message size 1001 exceeds the limit of 1000 bytes"},
        {"counted body over the limit", "max_message_size = 1000",
         Msg{"<noreply@contoso.com>", {"SIZE=10"}, {"<b@example.org>"}, {}, 999}, "body",
         Action::reject, "552", "5.3.4", "max_message_size", "noreply", ""},
        {"counted size exactly at the limit", "max_message_size = 1000",
         // "From: noreply@contoso.com\r\n" = 27 bytes, empty line 2, body 971
         Msg{"<noreply@contoso.com>",
             {},
             {"<b@example.org>"},
             {{"From", "noreply@contoso.com"}},
             971},
         "eom", Action::accept, "", "", "", "noreply", ""},
        {"counted size one over the limit", "max_message_size = 1000",
         Msg{"<noreply@contoso.com>",
             {},
             {"<b@example.org>"},
             {{"From", "noreply@contoso.com"}},
             972},
         "body", Action::reject, "552", "5.3.4", "max_message_size", "noreply", ""},
        // The delivery method's own size limit: Graph accounts only.
        {"Graph account: SIZE at its limit", "",
         Msg{"<graph@contoso.com>",
             {"SIZE=" + std::to_string(kGraphCounted)},
             {"<b@example.org>"},
             {},
             10},
         "eom", Action::accept, "", "", "", "graphy", ""},
        {"Graph account: SIZE one over its limit", "",
         Msg{"<graph@contoso.com>",
             {"SIZE=" + std::to_string(kGraphCounted + 1)},
             {"<b@example.org>"},
             {},
             10},
         "mail", Action::reject, "552", "5.3.4", "graph_size_limit", "graphy",
         "exceeds the limit of 3145728 bytes of Microsoft Graph for account graphy"},
        {"Graph account: counted size at its limit", "",
         // "From: graph@contoso.com\r\n" = 25 bytes, empty line 2
         Msg{"<graph@contoso.com>",
             {},
             {"<b@example.org>"},
             {{"From", "graph@contoso.com"}},
             static_cast<std::size_t>(kGraphCounted - 27)},
         "eom", Action::accept, "", "", "", "graphy", ""},
        {"Graph account: counted size one over its limit", "",
         Msg{"<graph@contoso.com>",
             {},
             {"<b@example.org>"},
             {{"From", "graph@contoso.com"}},
             static_cast<std::size_t>(kGraphCounted - 26)},
         "body", Action::reject, "552", "5.3.4", "graph_size_limit", "graphy", "Microsoft Graph"},
        {"SMTP account: the same size passes", "",
         Msg{"<noreply@contoso.com>",
             {"SIZE=" + std::to_string(kGraphCounted + 1)},
             {"<b@example.org>"},
             {{"From", "noreply@contoso.com"}},
             static_cast<std::size_t>(kGraphCounted)},
         "eom", Action::accept, "", "", "", "noreply", ""},
        {"Graph account: a lower max_message_size applies", "max_message_size = 1000",
         Msg{"<graph@contoso.com>", {"SIZE=1001"}, {"<b@example.org>"}, {}, 10}, "mail",
         Action::reject, "552", "5.3.4", "max_message_size", "graphy",
         "exceeds the limit of 1000 bytes of this relay"},
        {"account health: credentials refused", "", simple("<noreply@contoso.com>", "x"), "mail",
         Action::tempfail, "451", "4.7.0", "account_health", "noreply",
         "account noreply cannot get a token from Entra ID: AADSTS7000215"},
    };
    return v;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(policy)

BOOST_AUTO_TEST_CASE(rule_table) {
    for (const Case& c : cases()) {
        BOOST_TEST_CONTEXT(c.name) {
            Fixture f(c.policy);
            if (std::string(c.rule) == "account_health")
                f.health_error = "AADSTS7000215: Invalid client secret provided";
            Transaction t = f.tx();
            Outcome o = run(t, c.msg);
            BOOST_TEST(o.stage == c.stage);
            BOOST_TEST(to_string(o.d.action) == to_string(c.action));
            BOOST_TEST(o.d.smtp_code == c.code);
            BOOST_TEST(o.d.enhanced_code == c.enh);
            BOOST_TEST(o.d.rule == c.rule);
            BOOST_TEST(o.d.account == c.account);
            BOOST_TEST(o.d.text.find(c.text_has) != std::string::npos, o.d.text);
            if (o.d.is_final()) {
                BOOST_TEST(o.d.reply() == std::string(c.code) + " " + c.enh + " " + o.d.text);
                BOOST_TEST(o.d.edits.empty());
                BOOST_TEST(t.done());
                // Later calls repeat the verdict.
                BOOST_TEST((t.on_eom().action == c.action));
            }
            for (const auto& r : o.rcpt)
                BOOST_TEST((r.action == Action::continue_));
        }
    }
}

BOOST_AUTO_TEST_CASE(recipients_exactly_at_limit_and_one_over) {
    Fixture f("max_recipients = 3");
    Transaction t = f.tx();
    BOOST_TEST((t.on_mail("<noreply@contoso.com>").action == Action::continue_));
    for (int i = 1; i <= 3; ++i)
        BOOST_TEST(
            (t.on_rcpt("<r" + std::to_string(i) + "@example.org>").action == Action::continue_));
    Decision d = t.on_rcpt("<r4@example.org>");
    BOOST_TEST((d.action == Action::tempfail));
    BOOST_TEST(d.reply() ==
               "452 4.5.3 too many recipients: at most 3 per message through this relay");
    BOOST_TEST(d.rule == "max_recipients");
    BOOST_TEST(!t.done());  // the message goes on with 3 recipients
    t.on_header("From", "noreply@contoso.com");
    Decision e = t.on_eom();
    BOOST_TEST((e.action == Action::accept));
    BOOST_TEST(t.recipients().size() == 3u);
    BOOST_TEST(f.limiter->usage("noreply").recipients_last_day == 3);
}

BOOST_AUTO_TEST_CASE(recipient_domains) {
    Fixture f(
        "allowed_recipient_domains = Example.org, .partner.example\n"
        "blocked_recipient_domains = bad.example.org");
    Transaction t = f.tx();
    t.on_mail("<noreply@contoso.com>");
    struct R {
        const char* rcpt;
        Action a;
        const char* rule;
        const char* text;
    };
    const R rs[] = {
        {"<bob@EXAMPLE.ORG>", Action::continue_, "", ""},
        {"<x@eu.partner.example>", Action::continue_, "", ""},
        {"<x@partner.example>", Action::reject, "allowed_recipient_domains",
         "recipient domain partner.example is not allowed on this relay"},
        {"<x@bad.example.org>", Action::reject, "blocked_recipient_domains",
         "recipient domain bad.example.org is blocked on this relay"},
        {"<x@Bad.Example.ORG>", Action::reject, "blocked_recipient_domains", ""},
        {"<x@other.example>", Action::reject, "allowed_recipient_domains", ""},
        {"<postmaster>", Action::reject, "allowed_recipient_domains", "has no domain"},
    };
    for (const R& r : rs) {
        BOOST_TEST_CONTEXT(r.rcpt) {
            Decision d = t.on_rcpt(r.rcpt);
            BOOST_TEST(to_string(d.action) == to_string(r.a));
            BOOST_TEST(d.rule == r.rule);
            BOOST_TEST(d.text.find(r.text) != std::string::npos);
            if (d.action == Action::reject) BOOST_TEST(d.reply().rfind("550 5.7.1 ", 0) == 0);
        }
    }
    BOOST_TEST(t.recipients().size() == 2u);
    // A blocked domain alone (no allow list).
    Fixture g("blocked_recipient_domains = example.net");
    Transaction u = g.tx();
    u.on_mail("<noreply@contoso.com>");
    BOOST_TEST((u.on_rcpt("<a@example.net>").action == Action::reject));
    BOOST_TEST((u.on_rcpt("<a@sub.example.net>").action == Action::continue_));
    BOOST_TEST((u.on_rcpt("<a@example.org>").action == Action::continue_));
}

BOOST_AUTO_TEST_CASE(tag_header_forged_copies_deleted_and_static_headers) {
    Fixture f;
    Transaction t = f.tx();
    t.on_mail("<alerts@contoso.com>", {"SIZE=500"});
    t.on_rcpt("<bob@example.org>");
    t.on_header("Received", "from x");
    t.on_header("X-O365Relay-Account", "noreply");  // forged
    t.on_header("From", "Alerts <alerts@contoso.com>");
    t.on_header("x-o365relay-account", "evil");  // forged, other case
    t.on_header("X-Env", "dev");                 // client copy of a static header
    t.on_body(10);
    Decision d = t.on_eom();
    BOOST_TEST((d.action == Action::accept));
    BOOST_TEST(d.account == "alerts");
    using K = HeaderEdit::Kind;
    std::vector<HeaderEdit> want = {
        {K::remove, "X-O365Relay-Account", 2, ""},
        {K::remove, "X-O365Relay-Account", 1, ""},
        {K::remove, "X-Env", 1, ""},
        {K::add, "X-O365Relay-Account", 0, "alerts"},
        {K::add, "X-Department", 0, "operations"},
        {K::add, "X-Env", 0, "prod"},
    };
    BOOST_TEST(d.edits.size() == want.size());
    for (std::size_t i = 0; i < std::min(d.edits.size(), want.size()); ++i) {
        BOOST_TEST_CONTEXT("edit " << i) {
            BOOST_TEST((d.edits[i].kind == want[i].kind));
            BOOST_TEST(d.edits[i].name == want[i].name);
            BOOST_TEST(d.edits[i].index == want[i].index);
            BOOST_TEST(d.edits[i].value == want[i].value);
        }
    }
    BOOST_TEST(!d.new_sender.has_value());
}

BOOST_AUTO_TEST_CASE(static_headers_of_other_accounts_deleted) {
    // alerts adds X-Department and X-Env: a client of noreply cannot send them.
    Fixture f;
    Transaction t = f.tx();
    t.on_mail("<noreply@contoso.com>");
    t.on_rcpt("<bob@example.org>");
    t.on_header("From", "noreply@contoso.com");
    t.on_header("X-Department", "forged");
    t.on_header("x-env", "a");
    t.on_header("X-Env", "b");
    t.on_header("X-Other", "kept");
    Decision d = t.on_eom();
    BOOST_TEST((d.action == Action::accept));
    using K = HeaderEdit::Kind;
    std::vector<HeaderEdit> want = {
        {K::remove, "X-Department", 1, ""},
        {K::remove, "X-Env", 2, ""},
        {K::remove, "X-Env", 1, ""},
        {K::add, "X-O365Relay-Account", 0, "noreply"},
    };
    BOOST_TEST((d.edits == want));
    BOOST_TEST(f.policy->managed_headers() ==
                   (std::vector<std::string>{"X-O365Relay-Account", "X-Department", "X-Env"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(unknown_sender_accept_still_deletes_forged_tag) {
    Fixture f("unknown_sender = accept");
    Transaction t = f.tx();
    t.on_mail("<x@elsewhere.example>");
    t.on_rcpt("<bob@example.org>");
    t.on_header("X-O365Relay-Account", "noreply");
    Decision d = t.on_eom();
    BOOST_TEST((d.action == Action::accept));
    BOOST_TEST(d.account == "");
    BOOST_TEST(d.edits.size() == 1u);
    BOOST_TEST((d.edits.at(0).kind == HeaderEdit::Kind::remove));
    BOOST_TEST(f.limiter->usage("").messages_last_minute == 0);
}

BOOST_AUTO_TEST_CASE(null_sender_rewrite_changes_envelope_and_from) {
    Fixture f("null_sender = rewrite\nnull_sender_account = alerts");
    Transaction t = f.tx();
    BOOST_TEST((t.on_mail("<>").action == Action::continue_));
    t.on_rcpt("<bob@example.org>");
    t.on_header("From", "Mail Delivery System <MAILER-DAEMON@relay.contoso.com>");
    t.on_header("From", "second@contoso.com");
    Decision d = t.on_eom();
    BOOST_TEST((d.action == Action::accept));
    BOOST_TEST(d.account == "alerts");
    BOOST_TEST(d.new_sender.value_or("") == "<alerts@contoso.com>");
    using K = HeaderEdit::Kind;
    // Each From the account may not send as becomes its mailbox, display name
    // kept: the transport's rule (common/sender_rules), header by header.
    std::vector<HeaderEdit> want = {
        {K::add, "X-O365Relay-Account", 0, "alerts"},
        {K::add, "X-Department", 0, "operations"},
        {K::add, "X-Env", 0, "prod"},
        {K::change, "From", 1, "Mail Delivery System <alerts@contoso.com>"},
        {K::change, "From", 2, "<alerts@contoso.com>"},
    };
    BOOST_TEST((d.edits == want));
    // An aligned From is kept; a missing one is added.
    Transaction u = f.tx();
    u.on_mail("");
    u.on_rcpt("<bob@example.org>");
    u.on_header("From", "alerts@contoso.com");
    Decision e = u.on_eom();
    BOOST_TEST(e.edits.size() == 3u);
    Transaction w = f.tx();
    w.on_mail("<>");
    w.on_rcpt("<bob@example.org>");
    Decision g = w.on_eom();
    BOOST_TEST((g.edits.back() == HeaderEdit{K::add, "From", 0, "<alerts@contoso.com>"}));
}

BOOST_AUTO_TEST_CASE(messages_per_minute_tempfail_after_n) {
    Fixture f("messages_per_minute = 2");
    for (int i = 0; i < 2; ++i) {
        Transaction t = f.tx();
        BOOST_TEST((run(t, simple("<noreply@contoso.com>", "noreply@contoso.com")).d.action ==
                    Action::accept));
    }
    Transaction t = f.tx();
    Outcome o = run(t, simple("<noreply@contoso.com>", "noreply@contoso.com"));
    BOOST_TEST(o.stage == "mail");
    BOOST_TEST(o.d.reply() ==
               "451 4.7.1 account noreply reached 2 messages per minute; try again later");
    BOOST_TEST(o.d.rule == "messages_per_minute");
    // Another account is not affected.
    Transaction a = f.tx();
    BOOST_TEST(
        (run(a, simple("<alerts@contoso.com>", "alerts@contoso.com")).d.action == Action::accept));
    // A minute later it goes through again.
    *f.now += 60;
    Transaction u = f.tx();
    BOOST_TEST((run(u, simple("<noreply@contoso.com>", "noreply@contoso.com")).d.action ==
                Action::accept));
}

BOOST_AUTO_TEST_CASE(messages_per_minute_race_decided_at_eom) {
    // Two transactions pass the MAIL check; only the first to finish is counted.
    Fixture f("messages_per_minute = 1");
    Transaction a = f.tx(), b = f.tx();
    BOOST_TEST((a.on_mail("<noreply@contoso.com>").action == Action::continue_));
    BOOST_TEST((b.on_mail("<noreply@contoso.com>").action == Action::continue_));
    a.on_rcpt("<x@example.org>");
    b.on_rcpt("<x@example.org>");
    BOOST_TEST((a.on_eom().action == Action::accept));
    Decision d = b.on_eom();
    BOOST_TEST((d.action == Action::tempfail));
    BOOST_TEST(d.enhanced_code == "4.7.1");
    BOOST_TEST(f.limiter->usage("noreply").messages_last_minute == 1);
}

BOOST_AUTO_TEST_CASE(recipients_per_day) {
    Fixture f("recipients_per_day = 3");
    Transaction t = f.tx();
    t.on_mail("<noreply@contoso.com>");
    BOOST_TEST((t.on_rcpt("<a@example.org>").action == Action::continue_));
    BOOST_TEST((t.on_rcpt("<b@example.org>").action == Action::continue_));
    BOOST_TEST((t.on_eom().action == Action::accept));
    *f.now += 3600;
    Transaction u = f.tx();
    u.on_mail("<noreply@contoso.com>");
    BOOST_TEST((u.on_rcpt("<c@example.org>").action == Action::continue_));
    Decision d = u.on_rcpt("<d@example.org>");
    BOOST_TEST(d.reply() ==
               "451 4.7.1 account noreply reached 3 recipients per day; try again later");
    BOOST_TEST((u.on_eom().action == Action::accept));
    BOOST_TEST(f.limiter->usage("noreply").recipients_last_day == 3);
    // A day after the first message its two recipients have aged out.
    *f.now += 86400 - 3600;
    Transaction w = f.tx();
    w.on_mail("<noreply@contoso.com>");
    BOOST_TEST((w.on_rcpt("<e@example.org>").action == Action::continue_));
    BOOST_TEST((w.on_rcpt("<f@example.org>").action == Action::continue_));
    BOOST_TEST((w.on_rcpt("<g@example.org>").action == Action::tempfail));
}

BOOST_AUTO_TEST_CASE(non_smtp_submission_answers_at_end_of_message) {
    // sendmail(1): no reject/tempfail at the emulated RCPT stage.
    Fixture f("max_recipients = 2\nblocked_recipient_domains = example.net");
    {
        Transaction t = f.tx(false);
        t.on_mail("noreply@contoso.com");
        BOOST_TEST((t.on_rcpt("a@example.org").action == Action::continue_));
        BOOST_TEST((t.on_rcpt("b@example.net").action == Action::continue_));
        Decision d = t.on_eom();
        BOOST_TEST((d.action == Action::reject));
        BOOST_TEST(d.rule == "blocked_recipient_domains");
        BOOST_TEST(f.limiter->usage("noreply").messages_last_minute == 0);
    }
    {
        Transaction t = f.tx(false);
        t.on_mail("noreply@contoso.com");
        for (const char* r : {"a@example.org", "b@example.org", "c@example.org"})
            BOOST_TEST((t.on_rcpt(r).action == Action::continue_));
        Decision d = t.on_eom();
        BOOST_TEST(d.reply() ==
                   "550 5.5.3 too many recipients: at most 2 per message through this relay");
    }
    {
        // MAIL-stage rejects are allowed for emulated MAIL events.
        Transaction t = f.tx(false);
        BOOST_TEST((t.on_mail("stranger@example.org").action == Action::reject));
    }
    {
        Transaction t = f.tx(false);
        t.on_mail("noreply@contoso.com");
        t.on_rcpt("a@example.org");
        t.on_header("From", "noreply@contoso.com");
        BOOST_TEST((t.on_eom().action == Action::accept));
    }
}

BOOST_AUTO_TEST_CASE(non_smtp_recipients_per_day_at_eom) {
    Fixture f("recipients_per_day = 2");
    Transaction t = f.tx(false);
    t.on_mail("noreply@contoso.com");
    for (const char* r : {"a@example.org", "b@example.org", "c@example.org"})
        BOOST_TEST((t.on_rcpt(r).action == Action::continue_));
    Decision d = t.on_eom();
    BOOST_TEST((d.action == Action::tempfail));
    BOOST_TEST(d.rule == "recipients_per_day");
}

BOOST_AUTO_TEST_CASE(config_snapshot_survives_reload) {
    // A message keeps the Policy (config) it started with.
    Fixture f("max_recipients = 1");
    Transaction t = f.tx();
    t.on_mail("<noreply@contoso.com>");
    f.policy = std::make_shared<Policy>(make_config("max_recipients = 5"), f.limiter);
    BOOST_TEST((t.on_rcpt("<a@example.org>").action == Action::continue_));
    BOOST_TEST((t.on_rcpt("<b@example.org>").action == Action::tempfail));
    Transaction u = f.tx();
    u.on_mail("<noreply@contoso.com>");
    BOOST_TEST((u.on_rcpt("<a@example.org>").action == Action::continue_));
    BOOST_TEST((u.on_rcpt("<b@example.org>").action == Action::continue_));
}

BOOST_AUTO_TEST_CASE(log_line_names_everything) {
    Fixture f;
    Transaction t = f.tx();
    t.set_queue_id("4F2A31C2D");
    t.on_mail("<noreply@contoso.com>");
    t.on_rcpt("<bob@example.org>");
    t.on_header("From", "ceo@contoso.com");
    Decision d = t.on_eom();
    std::string line = t.log_line(d);
    BOOST_TEST(line.find("4F2A31C2D: from=<noreply@contoso.com>, account=noreply") == 0u, line);
    BOOST_TEST(line.find("nrcpt=1 (<bob@example.org>)") != std::string::npos, line);
    BOOST_TEST(line.find("verdict=reject, rule=require_from_alignment") != std::string::npos, line);
    BOOST_TEST(line.find("reply=\"550 5.7.1 header From") != std::string::npos, line);
    Transaction u = f.tx();
    u.on_mail("<x@y.example>");
    BOOST_TEST(u.log_line(u.on_eom()).find("NOQUEUE: from=<x@y.example>, account=-") == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
