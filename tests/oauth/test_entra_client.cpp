// Integration test of EntraClient against tests/fakes/fake_entra.py over real
// HTTPS on 127.0.0.1: a test CA is made at test time (make_test_ca.sh), the
// fake is started on a free port, and every grant runs against it (client
// secret, certificate PS256/RS256, refresh-token rotation, device code) plus
// injected faults and untrusted server certificates. The last case checks that
// no secret value (client secret, assertion, device code, access or refresh
// token) appears in the log file of the whole run.
#define BOOST_TEST_MODULE entra_client
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "config.hpp"
#include "log.hpp"
#include "oauth.hpp"

extern char** environ;

using namespace o365;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A client secret with every character that breaks a careless form encoder.
const std::string kSecret = "Xy7~Q8+abc/def=&%20 \xc3\xa9nd";
const std::string kSeedRefresh = "0.AR-seeded-refresh-token-0123456789";
const char* kTenant = "contoso.onmicrosoft.com";

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

void write_file(const fs::path& p, const std::string& text, mode_t mode = 0600) {
    fs::path tmp = p.string() + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << text;
    }
    ::chmod(tmp.c_str(), mode);
    fs::rename(tmp, p);
}

// A running fake_entra.py; stopped (SIGTERM) by the destructor.
class FakeEntra {
  public:
    FakeEntra(const fs::path& state, const fs::path& cert, const fs::path& key,
              const fs::path& log) {
        fs::create_directories(state);
        int out[2];
        BOOST_REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        std::string script = std::string(O365_FAKES_DIR) + "/fake_entra.py";
        std::vector<std::string> args = {"python3", script,        "--state", state.string(),
                                         "--cert",  cert.string(), "--key",   key.string()};
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start python3");
        std::string line;
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (line.find('\n') == std::string::npos) {
            pollfd p{out[0], POLLIN, 0};
            int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            until - std::chrono::steady_clock::now())
                                            .count());
            if (left <= 0 || ::poll(&p, 1, left) <= 0) break;
            char c;
            if (::read(out[0], &c, 1) != 1) break;
            line.push_back(c);
        }
        ::close(out[0]);
        BOOST_REQUIRE_MESSAGE(line.rfind("READY ", 0) == 0,
                              "fake_entra did not start: '" << line << "'; see " << log);
        port_ = std::stoi(line.substr(6));
    }
    ~FakeEntra() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int st;
            ::waitpid(pid_, &st, 0);
        }
    }
    int port() const { return port_; }

  private:
    pid_t pid_ = -1;
    int port_ = 0;
};

// Everything the tests share: CA, the fake, the config, the log file.
struct Env {
    static Env* instance;
    fs::path dir, ca, state;
    std::unique_ptr<FakeEntra> fake;
    std::shared_ptr<const Config> cfg;
    fs::path relay_log;
    std::set<std::string> secrets;  // values that must never reach the log

    Env() {
        const char* t = std::getenv("TMPDIR");
        std::string tmpl = std::string(t && *t ? t : "/tmp") + "/o365-oauth-XXXXXX";
        BOOST_REQUIRE(::mkdtemp(tmpl.data()));
        dir = tmpl;
        // Loopback only: a proxy from the environment must not take these requests.
        ::setenv("no_proxy", "127.0.0.1,localhost,::1", 1);
        ::setenv("NO_PROXY", "127.0.0.1,localhost,::1", 1);
        ca = dir / "ca";
        state = dir / "entra";
        std::string cmd = "sh " + std::string(O365_FAKES_DIR) + "/make_test_ca.sh " + ca.string();
        BOOST_REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "make_test_ca.sh failed");
        write_file(dir / "client.secret", kSecret + "\n");
        secrets.insert(kSecret);
        secrets.insert(kSeedRefresh);
        fs::create_directories(state);
        write_entra_config({});
        set_faults(json::array());
        fake = std::make_unique<FakeEntra>(state, ca / "server.crt", ca / "server.key",
                                           dir / "fake_entra.log");
        relay_log = dir / "relay.log";
        cfg = parse_config(config_text("https://127.0.0.1:" + std::to_string(fake->port())),
                           "test.conf");
        log_init("file:" + relay_log.string(), LogLevel::debug, "test_entra_client");
    }
    ~Env() {
        fake.reset();
        if (!std::getenv("O365_KEEP_TMP")) fs::remove_all(dir);
    }

    std::string config_text(const std::string& authority) const {
        return "[relay]\nstate_dir = " + (dir / "relay").string() +
               "\nlog = file:" + (dir / "relay.log").string() +
               "\nlog_level = debug\n"
               "[entra]\nauthority = " +
               authority + "\ntenant = " + kTenant +
               "\nclient_id = conf-client\nclient_secret_file = " +
               (dir / "client.secret").string() + "\nca_file = " + (ca / "ca.crt").string() +
               "\nhttp_timeout = 5\n"
               "[account secret]\nmailbox = app@contoso.com\n"
               "[account cert]\nmailbox = cert@contoso.com\ncertificate_file = " +
               (ca / "app.crt").string() + "\nprivate_key_file = " + (ca / "app.key").string() +
               "\n"
               "[account certrs]\nmailbox = certrs@contoso.com\nassertion_alg = RS256\n"
               "certificate_file = " +
               (ca / "app.crt").string() + "\nprivate_key_file = " + (ca / "app.key").string() +
               "\n"
               "[account delegated]\nmailbox = user@contoso.com\nflow = delegated\n"
               "client_id = pub-client\nclient_secret_file =\n"
               "[account slow]\nmailbox = slow@contoso.com\nhttp_timeout = 1\n";
    }

    // config.json of the fake; `extra` is merged over the defaults.
    void write_entra_config(const json& extra) {
        json c = {
            {"tenants", {kTenant}},
            {"signing_key", (ca / "entra-signing.key").string()},
            {"token_lifetime", 3599},
            {"clients",
             {{"conf-client", {{"secret", kSecret}, {"certificate", (ca / "app.crt").string()}}},
              {"pub-client", {{"public", true}}}}},
            {"refresh_tokens",
             {{kSeedRefresh, {{"client_id", "pub-client"}, {"mailbox", "user@contoso.com"}}}}},
            {"device_code", {{"interval", 5}, {"expires_in", 900}}}};
        if (extra.is_object()) c.merge_patch(extra);
        write_file(state / "config.json", c.dump(1));
    }
    void set_faults(const json& faults) { write_file(state / "faults.json", faults.dump(1)); }

    json stats() const { return json::parse(read_file(state / "stats.json")); }
    long grant_count(const std::string& grant) const {
        json s = stats();
        return s["by_grant"].value(grant, 0L);
    }
    const Account& account(const std::string& name) const {
        const Account* a = cfg->find_account(name);
        BOOST_REQUIRE(a);
        return *a;
    }
    void keep(const TokenGrant& g) {
        secrets.insert(g.access_token);
        if (!g.refresh_token.empty()) secrets.insert(g.refresh_token);
    }
};
Env* Env::instance = nullptr;

struct GlobalEnv {
    GlobalEnv() { Env::instance = new Env(); }
    ~GlobalEnv() { delete Env::instance; }
};
BOOST_TEST_GLOBAL_FIXTURE(GlobalEnv);

Env& env() {
    return *Env::instance;
}

// Before each case: default fake config, no faults.
struct Reset {
    Reset() {
        env().write_entra_config({});
        env().set_faults(json::array());
    }
};

OAuthError expect_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const OAuthError& e) {
        log_info(std::string("test: error: ") + e.what());
        return e;
    }
    BOOST_FAIL("no OAuthError");
    throw;  // unreachable
}

bool has(const std::string& s, const std::string& sub) {
    return s.find(sub) != std::string::npos;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(entra, Reset)

BOOST_AUTO_TEST_CASE(client_credentials_with_secret) {
    EntraClient c;
    long before = env().grant_count("client_credentials");
    TokenGrant g = c.acquire(env().account("secret"), "");
    env().keep(g);
    BOOST_TEST(!g.access_token.empty());
    BOOST_TEST(g.expires_in == 3599);
    BOOST_TEST(g.refresh_token.empty());
    BOOST_TEST(env().grant_count("client_credentials") == before + 1);  // exactly one request
    // The token really is one the fake issued (it records what it issued).
    BOOST_TEST(has(read_file(env().state / "secrets_seen.jsonl"), g.access_token));
    // EntraClient registered the token: a line that carries it is redacted.
    log_info("test: value " + g.access_token);
}

BOOST_AUTO_TEST_CASE(client_credentials_with_certificate_ps256_and_rs256) {
    EntraClient c;
    long before = env().grant_count("client_credentials");
    TokenGrant a = c.acquire(env().account("cert"), "");
    TokenGrant b = c.acquire(env().account("certrs"), "");
    env().keep(a);
    env().keep(b);
    BOOST_TEST(!a.access_token.empty());
    BOOST_TEST(!b.access_token.empty());
    BOOST_TEST(a.access_token != b.access_token);
    BOOST_TEST(env().grant_count("client_credentials") == before + 2);
    // Both assertions reached the fake and were checked there (signature, x5t).
    std::string seen = read_file(env().state / "secrets_seen.jsonl");
    BOOST_TEST(has(seen, "client_assertion"));
}

BOOST_AUTO_TEST_CASE(certificate_not_registered_is_rejected_by_signature_check) {
    // The app registration holds another certificate (same subject is irrelevant):
    // the fake refuses the thumbprint with AADSTS700027.
    env().write_entra_config(
        {{"clients", {{"conf-client", {{"certificate", (env().ca / "rogue.crt").string()}}}}}});
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(env().account("cert"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::configuration));
    BOOST_TEST(e.aadsts() == "AADSTS700027");
    BOOST_TEST(has(e.what(), "hint: the assertion signature was not accepted"));
    BOOST_TEST(e.http_status() == 401);
}

BOOST_AUTO_TEST_CASE(wrong_secret_from_fake) {
    env().write_entra_config({{"clients", {{"conf-client", {{"secret", "another"}}}}}});
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(env().account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::configuration));
    BOOST_TEST(e.aadsts() == "AADSTS7000215");
}

BOOST_AUTO_TEST_CASE(refresh_token_rotation) {
    EntraClient c;
    const Account& a = env().account("delegated");
    long before = env().grant_count("refresh_token");
    TokenGrant g1 = c.acquire(a, kSeedRefresh);
    env().keep(g1);
    BOOST_TEST(!g1.access_token.empty());
    BOOST_TEST(!g1.refresh_token.empty());
    BOOST_TEST(g1.refresh_token != kSeedRefresh);
    // The old refresh token is now invalid.
    OAuthError e = expect_error([&] { c.acquire(a, kSeedRefresh); });
    BOOST_TEST((e.error_class() == ErrorClass::configuration));
    BOOST_TEST(e.oauth_error() == "invalid_grant");
    BOOST_TEST(e.aadsts() == "AADSTS70008");
    BOOST_TEST(has(e.what(), "run `o365relayctl login delegated`"));
    // The rotated one works and rotates again.
    TokenGrant g2 = c.acquire(a, g1.refresh_token);
    env().keep(g2);
    BOOST_TEST(g2.refresh_token != g1.refresh_token);
    BOOST_TEST(env().grant_count("refresh_token") == before + 3);
    log_info("test: value " + g2.refresh_token);
}

BOOST_AUTO_TEST_CASE(delegated_without_refresh_token) {
    EntraClient c;
    long before = env().stats()["total"].get<long>();
    OAuthError e = expect_error([&] { c.acquire(env().account("delegated"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::configuration));
    BOOST_TEST(has(e.what(), "o365relayctl login delegated"));
    BOOST_TEST(env().stats()["total"].get<long>() == before);  // no request made
}

BOOST_AUTO_TEST_CASE(device_code_with_pending_and_slow_down) {
    env().write_entra_config(
        {{"device_code",
          {{"polls", {"authorization_pending", "slow_down", "authorization_pending"}},
           {"outcome", "approve"},
           {"mailbox", "user@contoso.com"}}}});
    EntraClient c;
    const Account& a = env().account("delegated");
    DeviceCode dc = c.start_device_code(a);
    env().secrets.insert(dc.device_code);
    BOOST_TEST(dc.user_code.size() == 9u);
    BOOST_TEST(dc.verification_uri == "https://microsoft.com/devicelogin");
    BOOST_TEST(has(dc.message, dc.user_code));
    BOOST_TEST(dc.interval == 5);
    BOOST_TEST(dc.expires_in == 900);
    std::vector<int> sleeps;
    long before = env().grant_count("urn:ietf:params:oauth:grant-type:device_code");
    TokenGrant g = c.poll_device_code(a, dc, [&](int s) { sleeps.push_back(s); });
    env().keep(g);
    BOOST_TEST(sleeps == (std::vector<int>{5, 5, 10, 10}), "slept " << sleeps.size() << " times");
    BOOST_TEST(env().grant_count("urn:ietf:params:oauth:grant-type:device_code") == before + 4);
    BOOST_TEST(!g.access_token.empty());
    BOOST_TEST(!g.refresh_token.empty());
    // The refresh token from the login works.
    TokenGrant g2 = c.acquire(a, g.refresh_token);
    env().keep(g2);
    BOOST_TEST(g2.refresh_token != g.refresh_token);
}

BOOST_AUTO_TEST_CASE(device_code_outcomes) {
    EntraClient c;
    const Account& a = env().account("delegated");
    auto noop = [](int) {};
    struct Case {
        const char* outcome;
        const char* error;
    };
    for (Case k : {Case{"decline", "authorization_declined"}, Case{"expire", "expired_token"},
                   Case{"bad_code", "bad_verification_code"}}) {
        BOOST_TEST_CONTEXT(k.outcome) {
            env().write_entra_config({{"device_code", {{"outcome", k.outcome}}}});
            DeviceCode dc = c.start_device_code(a);
            env().secrets.insert(dc.device_code);
            OAuthError e = expect_error([&] { c.poll_device_code(a, dc, noop); });
            BOOST_TEST(e.oauth_error() == k.error);
            BOOST_TEST((e.error_class() == ErrorClass::permanent));
            BOOST_TEST(has(e.what(), "o365relayctl login delegated` again"));
        }
    }
    // The client gives up by itself after expires_in seconds of polling.
    env().write_entra_config(
        {{"device_code",
          {{"expires_in", 12},
           {"polls",
            json::array({"authorization_pending", "authorization_pending", "authorization_pending",
                         "authorization_pending", "authorization_pending"})}}}});
    DeviceCode dc = c.start_device_code(a);
    env().secrets.insert(dc.device_code);
    int slept = 0;
    OAuthError e = expect_error([&] { c.poll_device_code(a, dc, [&](int s) { slept += s; }); });
    BOOST_TEST(e.oauth_error() == "expired_token");
    BOOST_TEST(slept == 15);
}

BOOST_AUTO_TEST_CASE(device_code_request_with_bad_scope) {
    env().write_entra_config(
        {{"delegated_scope", "https://outlook.office.com/IMAP.AccessAsUser.All"}});
    EntraClient c;
    OAuthError e = expect_error([&] { c.start_device_code(env().account("delegated")); });
    BOOST_TEST(e.aadsts() == "AADSTS70011");
    BOOST_TEST((e.error_class() == ErrorClass::configuration));
}

BOOST_AUTO_TEST_CASE(fault_aadsts_7000215) {
    env().set_faults(json::array({{{"kind", "aadsts"}, {"code", 7000215}, {"status", 401}}}));
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(env().account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::configuration));
    BOOST_TEST(e.http_status() == 401);
    BOOST_TEST(has(e.what(), "AADSTS7000215"));
    BOOST_TEST(has(e.what(), "hint: the client secret is wrong"));
    BOOST_TEST(!has(e.what(), "Trace ID"));
}

BOOST_AUTO_TEST_CASE(fault_429_with_retry_after) {
    env().set_faults(json::array({{{"kind", "429"}, {"retry_after", 42}}}));
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(env().account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(e.http_status() == 429);
    BOOST_TEST(e.retry_after() == 42);
    BOOST_TEST(has(e.what(), "[retry after 42 s]"));
}

BOOST_AUTO_TEST_CASE(fault_500_then_recovers) {
    env().set_faults(json::array({{{"kind", "500"}, {"count", 1}}}));
    EntraClient c;
    long before = env().grant_count("client_credentials");
    OAuthError e = expect_error([&] { c.acquire(env().account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(e.http_status() == 500);
    BOOST_TEST(has(e.what(), "[HTTP 500]"));
    TokenGrant g = c.acquire(env().account("secret"), "");  // the fault was used up
    env().keep(g);
    BOOST_TEST(env().grant_count("client_credentials") == before + 2);
    BOOST_TEST(env().stats()["faults"].value("500", 0) >= 1);
}

BOOST_AUTO_TEST_CASE(fault_503_html) {
    env().set_faults(json::array(
        {{{"kind", "500"}, {"status", 503}, {"body", "<html>Service Unavailable</html>"}}}));
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(env().account("cert"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(e.http_status() == 503);
    BOOST_TEST(has(e.what(), "Service Unavailable"));
}

BOOST_AUTO_TEST_CASE(fault_slow_beyond_http_timeout) {
    env().set_faults(json::array({{{"kind", "slow"}, {"delay", 3}}}));
    EntraClient c;
    auto t0 = std::chrono::steady_clock::now();
    OAuthError e = expect_error([&] { c.acquire(env().account("slow"), ""); });  // http_timeout 1
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(has(e.what(), "timed out after 1 s"), e.what());
    BOOST_TEST(has(e.what(), "127.0.0.1"));
    BOOST_TEST(e.http_status() == 0);
    BOOST_TEST(secs < 2.5);
}

BOOST_AUTO_TEST_CASE(fault_malformed_json) {
    env().set_faults(json::array({{{"kind", "malformed"}}}));
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(env().account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(has(e.what(), "malformed token answer from Entra: not JSON"));
}

BOOST_AUTO_TEST_CASE(expires_in_as_string_and_missing_token) {
    env().write_entra_config({{"expires_in_as_string", true}, {"token_lifetime", 4785}});
    EntraClient c;
    TokenGrant g = c.acquire(env().account("secret"), "");
    env().keep(g);
    BOOST_TEST(g.expires_in == 4785);
    env().set_faults(json::array(
        {{{"kind", "malformed"}, {"body", R"({"token_type":"Bearer","expires_in":3599})"}}}));
    OAuthError e = expect_error([&] { c.acquire(env().account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(has(e.what(), "no access_token"));
}

BOOST_AUTO_TEST_CASE(fault_connection_closed) {
    env().set_faults(json::array({{{"kind", "close"}}}));
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(env().account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(e.http_status() == 0);
    BOOST_TEST(has(e.what(), "token request to 127.0.0.1"));
}

BOOST_AUTO_TEST_CASE(untrusted_and_wrong_host_certificates) {
    for (const char* name : {"rogue", "wronghost"}) {
        BOOST_TEST_CONTEXT(name) {
            FakeEntra other(env().dir / (std::string("entra-") + name),
                            env().ca / (std::string(name) + ".crt"),
                            env().ca / (std::string(name) + ".key"), env().dir / "fake_other.log");
            auto cfg = parse_config(
                env().config_text("https://127.0.0.1:" + std::to_string(other.port())), "x.conf");
            EntraClient c;
            OAuthError e = expect_error([&] { c.acquire(*cfg->find_account("secret"), ""); });
            BOOST_TEST((e.error_class() == ErrorClass::temporary));
            BOOST_TEST(e.http_status() == 0);
            BOOST_TEST(has(e.what(), "certificate"), e.what());
            // The secret never left: the rogue server saw no request.
            BOOST_TEST(
                !fs::exists(env().dir / (std::string("entra-") + name) / "secrets_seen.jsonl"));
        }
    }
}

BOOST_AUTO_TEST_CASE(connection_refused) {
    int port;
    {
        // A port that was free a moment ago and has no listener now.
        FakeEntra tmp(env().dir / "entra-gone", env().ca / "server.crt", env().ca / "server.key",
                      env().dir / "fake_other.log");
        port = tmp.port();
    }
    auto cfg =
        parse_config(env().config_text("https://127.0.0.1:" + std::to_string(port)), "x.conf");
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(*cfg->find_account("secret"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(has(e.what(), "token request to 127.0.0.1"));
}

BOOST_AUTO_TEST_CASE(server_that_never_answers_tls_times_out_connecting) {
    // The kernel completes the TCP handshake (backlog), but nobody ever accepts, so
    // the TLS handshake never ends: a timeout of the connect phase.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    BOOST_REQUIRE(::listen(fd, 8) == 0);
    socklen_t len = sizeof sa;
    BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    auto cfg = parse_config(
        env().config_text("https://127.0.0.1:" + std::to_string(ntohs(sa.sin_port))), "x.conf");
    EntraClient c;
    auto t0 = std::chrono::steady_clock::now();
    OAuthError e = expect_error([&] { c.acquire(*cfg->find_account("slow"), ""); });
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ::close(fd);
    BOOST_TEST((e.error_class() == ErrorClass::temporary));
    BOOST_TEST(has(e.what(), "timed out after 1 s connecting to 127.0.0.1"), e.what());
    BOOST_TEST(secs < 2.5);
}

BOOST_AUTO_TEST_CASE(bad_credential_file_is_configuration) {
    auto text = env().config_text("https://127.0.0.1:1") +
                "[account badkey]\nmailbox = bk@contoso.com\ncertificate_file = " +
                (env().ca / "app.crt").string() +
                "\nprivate_key_file = " + (env().ca / "rogue.key").string() + "\n";
    auto cfg = parse_config(text, "x.conf");
    EntraClient c;
    OAuthError e = expect_error([&] { c.acquire(*cfg->find_account("badkey"), ""); });
    BOOST_TEST((e.error_class() == ErrorClass::configuration));
    BOOST_TEST(has(e.what(), "does not belong to certificate"));
}

// Must stay the last case: it checks the log of the whole run.
BOOST_AUTO_TEST_CASE(no_secret_reaches_the_log) {
    // Everything the fake received or issued is a secret as well.
    std::ifstream seen(env().state / "secrets_seen.jsonl");
    std::string line;
    int n = 0;
    std::set<std::string> kinds;
    while (std::getline(seen, line)) {
        json j = json::parse(line);
        env().secrets.insert(j["value"].get<std::string>());
        kinds.insert(j["kind"].get<std::string>());
        ++n;
    }
    for (const char* k :
         {"client_secret", "client_assertion", "refresh_token", "device_code", "access_token"})
        BOOST_TEST(kinds.count(k) == 1u, "the run exercised no " << k);
    std::string log = read_file(env().relay_log);
    BOOST_TEST_REQUIRE(log.size() > 1000u, "the log is too small to mean anything");
    BOOST_TEST(has(log, "token request (client_credentials, client secret)"));
    BOOST_TEST(has(log, "token request (client_credentials, certificate PS256)"));
    BOOST_TEST(has(log, "test: value [redacted]"));
    BOOST_TEST(has(log, "AADSTS7000215"));
    for (const auto& s : env().secrets) {
        BOOST_TEST(!s.empty());
        BOOST_TEST(!has(log, s), "secret of " << s.size() << " bytes found in the log");
    }
    BOOST_TEST_MESSAGE("checked " << env().secrets.size() << " secret values (" << n
                                  << " from the fake) against " << log.size() << " bytes of log");
}

BOOST_AUTO_TEST_SUITE_END()
