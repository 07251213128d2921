// Config loading: good files, every default, inheritance, and bad files whose
// errors must name file, line and key (table-driven).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

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

// A fresh directory under TMPDIR, removed at the end of the test.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "o365cfgXXXXXX").string();
        BOOST_REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

// load_config(path) in a child process, so that a hang (a FIFO opened for
// reading blocks until a writer comes) fails the test instead of stalling it.
// Returns the error text, "" when the file loaded, nullopt when it hung.
std::optional<std::string> load_error_in_child(const std::string& path) {
    int fds[2];
    BOOST_REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        std::string msg;
        try {
            load_config(path);
        } catch (const ConfigError& e) {
            msg = std::string("ConfigError: ") + e.what();
        } catch (const std::exception& e) {
            msg = std::string("other exception: ") + e.what();
        }
        ssize_t n = ::write(fds[1], msg.data(), msg.size());
        ::_exit(n == static_cast<ssize_t>(msg.size()) ? 0 : 1);
    }
    ::close(fds[1]);
    pollfd p{fds[0], POLLIN, 0};
    std::string out;
    bool hung = false;
    for (;;) {
        int r = ::poll(&p, 1, 5000);
        if (r == 0) {
            hung = true;
            break;
        }
        char buf[512];
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    if (hung) ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (hung) return std::nullopt;
    return out;
}

BOOST_AUTO_TEST_CASE(repeated_list_keys_append) {
    // A second line of a list key adds to the list: it must not silently drop
    // (unblock) what the first line said.
    auto c = parse_config(std::string(kMinimal) +
                              "senders = three@contoso.com\n"
                              "[policy]\n"
                              "blocked_recipient_domains = a.example\n"
                              "allowed_recipient_domains = one.example\n"
                              "blocked_recipient_domains = b.example, c.example\n"
                              "allowed_recipient_domains = two.example\n",
                          "t.conf");
    BOOST_TEST(c->policy.blocked_recipient_domains ==
                   (std::vector<std::string>{"a.example", "b.example", "c.example"}),
               boost::test_tools::per_element());
    BOOST_TEST(c->policy.allowed_recipient_domains ==
                   (std::vector<std::string>{"one.example", "two.example"}),
               boost::test_tools::per_element());
    BOOST_TEST(c->accounts[0].senders ==
                   (std::vector<std::string>{"noreply@contoso.com", "@apps.contoso.com",
                                             "three@contoso.com"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(list_keys_append_across_repeated_sections) {
    auto c = parse_config(std::string(kMinimal) +
                              "[policy]\nblocked_recipient_domains = a.example\n"
                              "[smtp]\nport = 25\n"
                              "[policy]\nblocked_recipient_domains = b.example\n",
                          "t.conf");
    BOOST_TEST(
        c->policy.blocked_recipient_domains == (std::vector<std::string>{"a.example", "b.example"}),
        boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(repeated_scalar_key_names_both_lines) {
    struct Case {
        std::string text;
        std::string expect;
    };
    const std::string m = kMinimal;  // 8 lines
    const std::vector<Case> cases = {
        {m + "[smtp]\nport = 25\nhost = h.example\nport = 2525\n",
         "test.conf:12: [smtp] port: set twice (first at line 10)"},
        {m + "mailbox = other@contoso.com\n",
         "test.conf:9: [account noreply] mailbox: set twice (first at line 7)"},
        {m + "[entra]\ntenant = again.example\n",
         "test.conf:10: [entra] tenant: set twice (first at line 2)"},
        {m + "[smtp]\nport = 25\n[policy]\nmax_recipients = 5\n[smtp]\nport = 26\n",
         "test.conf:14: [smtp] port: set twice (first at line 10)"},
        {m + "flow = delegated\nflow = delegated\n",
         "test.conf:10: [account noreply] flow: set twice (first at line 9)"},
    };
    for (const auto& c : cases) {
        std::string err = error_of(c.text);
        BOOST_TEST_CONTEXT(c.text) {
            BOOST_TEST(err == c.expect);
        }
    }
}

BOOST_AUTO_TEST_CASE(indented_line_continues_a_list_key) {
    auto c = parse_config(std::string(kMinimal) +
                              "  more@contoso.com ; a comment\n"
                              "\t@more.example\n"
                              "[policy]\n"
                              "blocked_recipient_domains = a.example\n"
                              "    b.example c.example\n"
                              "; a comment between\n"
                              "    d.example\n",
                          "t.conf");
    BOOST_TEST(c->accounts[0].senders ==
                   (std::vector<std::string>{"noreply@contoso.com", "@apps.contoso.com",
                                             "more@contoso.com", "@more.example"}),
               boost::test_tools::per_element());
    BOOST_TEST(c->policy.blocked_recipient_domains ==
                   (std::vector<std::string>{"a.example", "b.example", "c.example", "d.example"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(indented_line_after_a_scalar_key_is_an_error) {
    const std::string m = kMinimal;  // 8 lines
    std::string err = error_of(m + "[smtp]\nport = 587\n  2525\n");
    BOOST_TEST(err.find("test.conf:11: [smtp] port:") == 0u, err);
    BOOST_TEST(err.find("continuation") != std::string::npos, err);
    // An indented "key = value" after a scalar is a continuation too, not a key.
    err = error_of(m + "[smtp]\nport = 587\n  host = h.example\n");
    BOOST_TEST(err.find("test.conf:11: [smtp] port:") == 0u, err);
    err = error_of(m + "mailbox = noreply@contoso.com\n");  // not indented: set twice
    BOOST_TEST(err.find("set twice") != std::string::npos, err);
}

BOOST_AUTO_TEST_CASE(a_file_without_account_is_an_error) {
    for (const std::string& text :
         {std::string(""), std::string("[entra]\ntenant = t\nclient_id = c\n"),
          std::string("[smtp]\nport = 25\n[policy]\nmax_recipients = 3\n")}) {
        std::string err = error_of(text);
        BOOST_TEST_CONTEXT(text) {
            BOOST_TEST(err.find("test.conf") == 0u, err);
            BOOST_TEST(err.find("no [account NAME] section: o365relay relays nothing") !=
                           std::string::npos,
                       err);
        }
    }
}

BOOST_AUTO_TEST_CASE(delegated_account_does_not_inherit_the_app_credential) {
    auto c = parse_config(R"([entra]
tenant = t.example
client_id = cid
client_secret_file = /etc/o365relay/secret
certificate_file = /etc/o365relay/app.crt
private_key_file = /etc/o365relay/app.key
scope = https://outlook.office365.com/.default

[account app]
mailbox = app@x.org

[account user]
mailbox = user@x.org
flow = delegated

[account confidential]
mailbox = c@x.org
flow = delegated
client_secret_file = /etc/o365relay/c.secret
scope = https://outlook.office.com/SMTP.Send offline_access openid
)",
                          "t.conf");
    const Account* app = c->find_account("app");
    const Account* user = c->find_account("user");
    const Account* conf = c->find_account("confidential");
    BOOST_REQUIRE(app);
    BOOST_REQUIRE(user);
    BOOST_REQUIRE(conf);
    BOOST_TEST(app->entra.client_secret_file == "/etc/o365relay/secret");
    BOOST_TEST(app->entra.certificate_file == "/etc/o365relay/app.crt");
    BOOST_TEST(app->entra.scope == "https://outlook.office365.com/.default");
    // A public client presents no credential (AADSTS700025), and the app-only
    // scope is wrong for a user token.
    BOOST_TEST(user->entra.client_secret_file == "");
    BOOST_TEST(user->entra.certificate_file == "");
    BOOST_TEST(user->entra.private_key_file == "");
    BOOST_TEST(!user->uses_certificate());
    BOOST_TEST(user->entra.scope == kDelegatedScope);
    BOOST_TEST(user->entra.tenant == "t.example");  // the rest is inherited
    BOOST_TEST(user->entra.client_id == "cid");
    // Its own section may still set them.
    BOOST_TEST(conf->entra.client_secret_file == "/etc/o365relay/c.secret");
    BOOST_TEST(conf->entra.scope == "https://outlook.office.com/SMTP.Send offline_access openid");
}

BOOST_AUTO_TEST_CASE(load_config_reads_a_regular_file) {
    TempDir d;
    auto p = (d.path / "o365relay.conf").string();
    std::ofstream(p) << kMinimal;
    auto c = load_config(p);
    BOOST_TEST(c->path == p);
    BOOST_TEST(c->accounts.size() == 1u);
}

BOOST_AUTO_TEST_CASE(load_config_refuses_a_directory) {
    TempDir d;
    const std::string p = d.path.string();
    auto err = load_error_in_child(p);
    BOOST_REQUIRE_MESSAGE(err.has_value(), "load_config of a directory hung");
    BOOST_TEST(err->find("ConfigError: " + p + ":") == 0u, *err);
    BOOST_TEST(err->find("not a regular file") != std::string::npos, *err);
    BOOST_TEST(err->find("directory") != std::string::npos, *err);
}

BOOST_AUTO_TEST_CASE(load_config_refuses_a_fifo_without_hanging) {
    TempDir d;
    const std::string p = (d.path / "fifo.conf").string();
    BOOST_REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
    auto err = load_error_in_child(p);
    BOOST_REQUIRE_MESSAGE(err.has_value(), "load_config of a FIFO hung");
    BOOST_TEST(err->find("ConfigError: " + p + ":") == 0u, *err);
    BOOST_TEST(err->find("not a regular file") != std::string::npos, *err);
    BOOST_TEST(err->find("FIFO") != std::string::npos, *err);
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
