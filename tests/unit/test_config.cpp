// Config loading: good files, every default, inheritance, and bad files whose
// errors must name file, line and key (table-driven).
#include <boost/test/unit_test.hpp>

#include "config.hpp"
#include "error.hpp"

using namespace o365;

namespace {

const char* kMinimal = R"([entra]
tenant = contoso.onmicrosoft.com
client_id = 11111111-2222-3333-4444-555555555555
client_secret_file = /etc/o365relay/secret

[account noreply]
mailbox = noreply@Contoso.com
senders = noreply@contoso.com, @Apps.Contoso.com
)";

std::string error_of(const std::string& text) {
    try {
        parse_config(text, "test.conf");
    } catch (const ConfigError& e) {
        BOOST_TEST((e.error_class() == ErrorClass::configuration));
        return e.what();
    }
    return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(defaults_match_design) {
    auto c = parse_config(kMinimal, "test.conf");
    BOOST_TEST(c->relay.state_dir == "/var/lib/o365relay");
    BOOST_TEST(c->relay.log == "syslog");
    BOOST_TEST((c->relay.log_level == LogLevel::info));
    BOOST_TEST(c->smtp.host == "smtp.office365.com");
    BOOST_TEST(c->smtp.port == 587);
    BOOST_TEST(c->smtp.connect_timeout == 30);
    BOOST_TEST(c->smtp.deadline == 900);
    BOOST_TEST(c->entra.authority == "https://login.microsoftonline.com");
    BOOST_TEST(c->entra.refresh_window == 600);
    BOOST_TEST(c->entra.http_timeout == 30);
    BOOST_TEST(c->milter.socket == "unix:/var/spool/postfix/o365relay/milter.sock");
    BOOST_TEST((c->milter.on_error == OnError::tempfail));
    BOOST_TEST(c->milter.tag_header == "X-O365Relay-Account");
    BOOST_TEST((c->policy.unknown_sender == UnknownSender::reject));
    BOOST_TEST(c->policy.require_from_alignment);
    BOOST_TEST((c->policy.null_sender == NullSender::rewrite));
    BOOST_TEST(c->policy.max_recipients == 500);
    BOOST_TEST(c->policy.max_message_size == 26214400);
    BOOST_TEST(c->policy.messages_per_minute == 0);
    BOOST_TEST(c->policy.recipients_per_day == 10000);
    BOOST_TEST(c->policy.allowed_recipient_domains.empty());
}

BOOST_AUTO_TEST_CASE(account_normalised_and_inherits) {
    auto c = parse_config(kMinimal, "test.conf");
    BOOST_REQUIRE(c->accounts.size() == 1);
    const Account& a = c->accounts[0];
    BOOST_TEST(a.name == "noreply");
    BOOST_TEST(a.mailbox == "noreply@contoso.com");
    BOOST_TEST(a.senders.size() == 2u);
    BOOST_TEST(a.senders[1] == "@apps.contoso.com");
    BOOST_TEST(a.entra.tenant == "contoso.onmicrosoft.com");
    BOOST_TEST(a.entra.client_secret_file == "/etc/o365relay/secret");
    BOOST_TEST(a.entra.scope == kAppOnlyScope);
    BOOST_TEST(a.entra.token_endpoint() ==
               "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    BOOST_TEST(c->find_account("noreply") == &a);
    BOOST_TEST(c->find_account("other") == nullptr);
}

BOOST_AUTO_TEST_CASE(account_overrides_and_entra_after_accounts) {
    // [entra] written after the account still applies to keys it did not override.
    auto c = parse_config(R"([account a]
mailbox = a@x.org
flow = delegated
tenant = other.onmicrosoft.com
add_header = X-Dept: Sales
add_header = X-Route: 1

[account b]
mailbox = b@x.org
certificate_file = /etc/o365relay/b.crt
private_key_file = /etc/o365relay/b.key
assertion_alg = RS256
refresh_window = 300

[entra]
tenant = base.onmicrosoft.com
client_id = cid
client_secret_file = /s
authority = https://login.example/
)",
                          "t.conf");
    const Account* a = c->find_account("a");
    const Account* b = c->find_account("b");
    BOOST_REQUIRE(a);
    BOOST_REQUIRE(b);
    BOOST_TEST(a->entra.tenant == "other.onmicrosoft.com");
    BOOST_TEST(a->entra.client_id == "cid");
    BOOST_TEST(a->entra.scope == kDelegatedScope);
    BOOST_TEST((a->flow == Flow::delegated));
    BOOST_TEST(a->senders.size() == 1u);  // defaults to the mailbox
    BOOST_TEST(a->senders[0] == "a@x.org");
    BOOST_TEST(a->headers.size() == 2u);
    BOOST_TEST(a->headers[0].first == "X-Dept");
    BOOST_TEST(a->headers[0].second == "Sales");
    BOOST_TEST(b->entra.tenant == "base.onmicrosoft.com");
    BOOST_TEST(b->uses_certificate());
    BOOST_TEST((b->entra.assertion_alg == AssertionAlg::rs256));
    BOOST_TEST(b->entra.refresh_window == 300);
    BOOST_TEST(a->entra.refresh_window == 600);
    BOOST_TEST(b->entra.token_endpoint() ==
               "https://login.example/base.onmicrosoft.com/oauth2/v2.0/token");
}

BOOST_AUTO_TEST_CASE(repeated_senders_append_and_inline_comments) {
    auto c = parse_config(std::string(kMinimal) +
                              "senders = two@contoso.com ; comment\n"
                              "[policy]\nallowed_recipient_domains = "
                              "Example.ORG, @b.example\n",
                          "t.conf");
    BOOST_TEST(c->accounts[0].senders.size() == 3u);
    BOOST_TEST(c->accounts[0].senders[2] == "two@contoso.com");
    BOOST_TEST(c->policy.allowed_recipient_domains.size() == 2u);
    BOOST_TEST(c->policy.allowed_recipient_domains[0] == "example.org");
    BOOST_TEST(c->policy.allowed_recipient_domains[1] == "b.example");
}

struct BadCase {
    const char* name;
    std::string text;
    std::vector<std::string> expect;  // substrings of the error
};

BOOST_AUTO_TEST_CASE(bad_files_name_file_line_and_key) {
    const std::string m = kMinimal;  // 8 lines
    const std::vector<BadCase> cases = {
        {"unknown key",
         m + "bogus = 1\n",
         {"test.conf:9:", "[account noreply]", "bogus", "unknown key"}},
        {"unknown section", "[nope]\nx = 1\n" + m, {"test.conf:1:", "unknown section [nope]"}},
        {"empty unknown section", m + "[smtpd]\n", {"test.conf:9:", "unknown section [smtpd]"}},
        {"bad port", "[smtp]\nport = 99999\n" + m, {"test.conf:2:", "[smtp] port", "out of range"}},
        {"port not a number", "[smtp]\nport = 58x\n" + m, {":2:", "port", "not a whole number"}},
        {"bad bool",
         "[policy]\nrequire_from_alignment = maybe\n" + m,
         {":2:", "require_from_alignment", "yes or no"}},
        {"bad enum",
         "[policy]\nunknown_sender = drop\n" + m,
         {":2:", "unknown_sender", "reject | tempfail | accept"}},
        {"bad log", "[relay]\nlog = /var/log/x\n" + m, {":2:", "[relay] log", "file:/"}},
        {"bad log_level", "[relay]\nlog_level = verbose\n" + m, {":2:", "log_level"}},
        {"relative state_dir",
         "[relay]\nstate_dir = var/lib\n" + m,
         {":2:", "state_dir", "absolute"}},
        {"bad socket", "[milter]\nsocket = /tmp/x.sock\n" + m, {":2:", "socket"}},
        {"bad socket_mode", "[milter]\nsocket_mode = 0999\n" + m, {":2:", "socket_mode"}},
        {"bad tag header", "[milter]\ntag_header = X Bad\n" + m, {":2:", "tag_header"}},
        {"missing mailbox",
         "[entra]\ntenant=t\nclient_id=c\nclient_secret_file=/s\n[account a]\nsenders = a@b.c\n",
         {"test.conf:5:", "[account a]", "mailbox", "missing"}},
        {"bad mailbox",
         m + "[account x]\nmailbox = nobody\n",
         {":10:", "mailbox", "not a mailbox"}},
        {"bad sender", m + "senders = @\n", {":9:", "senders"}},
        {"no credential",
         "[entra]\ntenant=t\nclient_id=c\n[account a]\nmailbox=a@b.c\n",
         {":4:", "client_secret_file", "needs a credential"}},
        {"cert without key",
         "[entra]\ntenant=t\nclient_id=c\ncertificate_file=/c\n[account a]\nmailbox=a@b.c\n",
         {":5:", "private_key_file", "go together"}},
        {"no tenant",
         "[entra]\nclient_id=c\nclient_secret_file=/s\n[account a]\nmailbox=a@b.c\n",
         {":4:", "tenant"}},
        {"relative secret path",
         "[entra]\nclient_secret_file = secret\n" + m,
         {":2:", "client_secret_file", "absolute"}},
        {"duplicate account", m + "[account noreply]\nmailbox = x@y.z\n", {":9:", "defined twice"}},
        {"bad account name", m + "[account a/b]\nmailbox = x@y.z\n", {":9:", "account name"}},
        {"unknown null_sender_account",
         "[policy]\nnull_sender_account = ghost\n" + m,
         {"null_sender_account", "ghost"}},
        {"key outside section", "stray = 1\n" + m, {"test.conf:1:", "outside of any section"}},
        {"syntax error", m + "this is not ini\n", {"test.conf:9:", "syntax error"}},
        {"line too long", m + "senders = " + std::string(300, 'a') + "@b.c\n", {":9:", "too long"}},
        {"add_header without colon", m + "add_header = X-Foo\n", {":9:", "add_header"}},
        {"http timeout zero", "[entra]\nhttp_timeout = 0\n" + m, {":2:", "http_timeout"}},
        {"assertion alg",
         "[entra]\nassertion_alg = HS256\n" + m,
         {":2:", "assertion_alg", "PS256"}},
        {"non https authority", "[entra]\nauthority = http://login\n" + m, {"authority", "https"}},
    };
    for (const auto& c : cases) {
        std::string err = error_of(c.text);
        BOOST_TEST_CONTEXT(c.name << ": " << err) {
            BOOST_TEST(!err.empty());
            for (const auto& s : c.expect)
                BOOST_TEST(err.find(s) != std::string::npos, "missing '" << s << "'");
        }
    }
}

BOOST_AUTO_TEST_CASE(missing_file_is_a_config_error) {
    try {
        load_config("/nonexistent/o365relay.conf");
        BOOST_FAIL("no error");
    } catch (const ConfigError& e) {
        BOOST_TEST(std::string(e.what()).find("/nonexistent/o365relay.conf") != std::string::npos);
    }
}

BOOST_AUTO_TEST_SUITE_END()
