// Unit tests of the shared token cache (docs/design.md section Token cache) with an
// in-process fake TokenSource and an injected clock.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "config.hpp"
#include "log.hpp"
#include "token.hpp"
#include "token_cache.hpp"
#include "token_cache_file.hpp"

namespace fs = std::filesystem;
using namespace o365;

namespace o365 {
std::ostream& boost_test_print_type(std::ostream& o, ErrorClass c) {
    return o << to_string(c);
}
}  // namespace o365

namespace {

constexpr std::int64_t kT0 = 1'700'000'000;

// Counts calls; throws the configured error; issues unique tokens.
struct FakeSource : TokenSource {
    std::atomic<int> calls{0};
    std::int64_t expires_in = 3600;
    std::optional<OAuthError> fail;
    std::string last_refresh_token;
    int sleep_ms = 0;
    std::atomic<int> with_deadline{0};

    // Like a network source: the wait ends at the deadline, with a timeout.
    TokenGrant acquire_until(const Account& a, const std::string& rt, Deadline d) override {
        ++with_deadline;
        auto wait = std::chrono::milliseconds(sleep_ms);
        if (wait > remaining(d)) {
            ++calls;
            std::this_thread::sleep_until(d);
            throw OAuthError(ErrorClass::temporary, "token request to fake: timed out");
        }
        return acquire(a, rt);
    }

    TokenGrant acquire(const Account& a, const std::string& rt) override {
        int n = ++calls;
        last_refresh_token = rt;
        if (sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
        if (fail) throw *fail;
        TokenGrant g;
        g.access_token = "access-" + a.name + "-" + std::to_string(n) + "-abcdefgh";
        g.expires_in = expires_in;
        if (a.flow == Flow::delegated)
            g.refresh_token = "refresh-" + std::to_string(n) + "-rotated";
        return g;
    }
};

std::string read_file(const std::string& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

void write_file(const std::string& p, const std::string& text, mode_t mode = 0600) {
    ::unlink(p.c_str());
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::fchmod(fd, mode);
    ::close(fd);
}

mode_t mode_of(const std::string& p) {
    struct stat st {};
    BOOST_REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

struct Fixture {
    std::string tmp;
    std::string state;
    std::string secret;
    std::int64_t now = kT0;
    std::shared_ptr<FakeSource> src = std::make_shared<FakeSource>();
    std::shared_ptr<const Config> cfg;

    Fixture() {
        const char* t = std::getenv("TMPDIR");
        std::string tmpl = std::string(t && *t ? t : "/tmp") + "/o365-tc-XXXXXX";
        BOOST_REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        tmp = tmpl;
        state = tmp + "/state";  // not created: the cache creates it
        secret = tmp + "/secret";
        write_file(secret, "s3cr3t-value-123\n");
        cfg = make_config("00000000-0000-0000-0000-000000000001");
        log_init("file:" + tmp + "/log", LogLevel::debug, "test_token_cache");
    }
    ~Fixture() {
        log_init("stderr", LogLevel::info, "test_token_cache");
        std::error_code ec;
        fs::remove_all(tmp, ec);
    }

    std::shared_ptr<const Config> make_config(
        const std::string& client_id,
        const std::string& extra = "") {  // extra: [entra] keys
        std::string text = "[relay]\nstate_dir = " + state +
                           "\n[entra]\ntenant = contoso.onmicrosoft.com\nclient_id = " + client_id +
                           "\nclient_secret_file = " + secret + "\n" + extra +
                           "[account app]\nmailbox = app@contoso.com\n"
                           "[account user]\nmailbox = user@contoso.com\nflow = delegated\n"
                           // A delegated account inherits no credential from [entra].
                           "client_secret_file = " +
                           secret + "\n";
        return parse_config(text, "test.conf");
    }
    const Account& app() const { return *cfg->find_account("app"); }
    const Account& user() const { return *cfg->find_account("user"); }
    TokenCache cache() {
        return TokenCache(state, src, [this] { return now; });
    }
    std::string entry(const std::string& name) const { return state + "/tokens/" + name + ".json"; }
    nlohmann::json json(const std::string& name) const {
        return nlohmann::json::parse(read_file(entry(name)));
    }
    std::string log_text() const { return read_file(tmp + "/log"); }
};

OAuthError temp_error() {
    return OAuthError(ErrorClass::temporary, "HTTP 503 from the token endpoint", "", "", 503);
}
OAuthError config_error() {
    return OAuthError(ErrorClass::configuration,
                      "invalid_client: AADSTS7000215: Invalid client secret provided.",
                      "invalid_client", "AADSTS7000215", 401);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(token_cache, Fixture)

BOOST_AUTO_TEST_CASE(cold_then_warm) {
    TokenCache c = cache();
    AccessToken t = c.get(app());
    BOOST_TEST(src->calls == 1);
    BOOST_TEST(t.expires_at == kT0 + 3600);
    BOOST_TEST(c.get(app()).value == t.value);
    now += 3600 - 601;  // still beyond the 600 s window
    BOOST_TEST(c.get(app()).value == t.value);
    BOOST_TEST(src->calls == 1);
    // A second TokenCache (another process) reads the same entry.
    TokenCache other = cache();
    BOOST_TEST(other.get(app()).value == t.value);
    BOOST_TEST(src->calls == 1);
}

BOOST_AUTO_TEST_CASE(files_modes_and_format) {
    TokenCache c = cache();
    AccessToken t = c.get(app());
    BOOST_TEST(mode_of(state + "/tokens") == 0700u);
    BOOST_TEST(mode_of(entry("app")) == 0600u);
    BOOST_TEST(mode_of(state + "/tokens/app.lock") == 0600u);
    struct stat st {};
    BOOST_REQUIRE(::stat(entry("app").c_str(), &st) == 0);
    BOOST_TEST(st.st_uid == ::geteuid());
    auto j = json("app");
    BOOST_TEST(j["version"] == 1);
    BOOST_TEST(j["account"] == "app");
    BOOST_TEST(j["access_token"] == t.value);
    BOOST_TEST(j["expires_at"] == kT0 + 3600);
    BOOST_TEST(j["obtained_at"] == kT0);
    BOOST_TEST(!j.contains("refresh_token"));  // client credentials
    BOOST_TEST(j["credential_fingerprint"] == TokenCache::fingerprint(app()));
    BOOST_TEST(j["last_error"].is_null());
    BOOST_TEST(!fs::exists(state + "/tokens/.app.json.tmp"));
    BOOST_TEST(TokenCache::fingerprint(app()).size() == 64u);  // hex SHA-256
}

BOOST_AUTO_TEST_CASE(inside_window_refreshes) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    now += 3600 - 599;
    AccessToken t2 = c.get(app());
    BOOST_TEST(src->calls == 2);
    BOOST_TEST(t2.value != t1.value);
    BOOST_TEST(t2.expires_at == now + 3600);
}

BOOST_AUTO_TEST_CASE(refresh_window_from_config) {
    cfg = make_config("00000000-0000-0000-0000-000000000001", "refresh_window = 1200\n");
    TokenCache c = cache();
    c.get(app());
    now += 3600 - 1100;  // outside 600, inside 1200
    c.get(app());
    BOOST_TEST(src->calls == 2);
}

BOOST_AUTO_TEST_CASE(failed_refresh_inside_window_keeps_current_token) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    now += 3600 - 300;  // 300 s left: inside window, more than 120 s
    src->fail = temp_error();
    AccessToken t2 = c.get(app());
    BOOST_TEST(t2.value == t1.value);
    BOOST_TEST(src->calls == 2);
    auto e = c.peek(app());
    BOOST_REQUIRE(e.has_value());
    BOOST_REQUIRE(e->last_error.has_value());
    BOOST_TEST(e->last_error->at == now);
    BOOST_TEST(e->last_error->error_class == ErrorClass::temporary);
    BOOST_TEST(e->last_error->message.find("HTTP 503") != std::string::npos);
    BOOST_TEST(e->failures == 1);
    BOOST_TEST(e->backoff_until == now + 5);
    BOOST_TEST(e->access_token == t1.value);  // the current token is kept
    // During the backoff the current token is still handed out, without a call.
    now += 2;
    BOOST_TEST(c.get(app()).value == t1.value);
    BOOST_TEST(src->calls == 2);
}

BOOST_AUTO_TEST_CASE(failed_refresh_with_less_than_120s_throws) {
    TokenCache c = cache();
    c.get(app());
    now += 3600 - 100;
    src->fail = config_error();
    try {
        c.get(app());
        BOOST_FAIL("get() must throw");
    } catch (const Error& e) {
        BOOST_TEST(e.error_class() == ErrorClass::configuration);
        BOOST_TEST(std::string(e.what()).find("AADSTS7000215") != std::string::npos);
        BOOST_TEST(std::string(e.what()).find("account app") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(never_hands_out_expired_token_without_request) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    now += 3600 - 110;  // less than 120 s left: must refresh
    AccessToken t2 = c.get(app());
    BOOST_TEST(t2.value != t1.value);
    BOOST_TEST(src->calls == 2);
}

BOOST_AUTO_TEST_CASE(backoff_throws_at_once_with_recorded_reason) {
    TokenCache c = cache();
    src->fail = config_error();
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 1);
    now += 4;
    try {
        c.get(app());
        BOOST_FAIL("get() must throw during the backoff");
    } catch (const Error& e) {
        BOOST_TEST(e.error_class() == ErrorClass::configuration);
        std::string m = e.what();
        BOOST_TEST(m.find("AADSTS7000215") != std::string::npos);
        BOOST_TEST(m.find("next attempt in 1 s") != std::string::npos);
    }
    BOOST_TEST(src->calls == 1);  // the source was not asked
    // A second process (another TokenCache) obeys the same backoff.
    TokenCache other = cache();
    BOOST_CHECK_THROW(other.get(app()), Error);
    BOOST_TEST(src->calls == 1);
    now += 1;  // backoff over
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 2);
}

BOOST_AUTO_TEST_CASE(backoff_doubles_and_caps_at_300) {
    TokenCache c = cache();
    src->fail = temp_error();
    const std::vector<std::int64_t> expected = {5, 10, 20, 40, 80, 160, 300, 300, 300};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        BOOST_CHECK_THROW(c.get(app()), Error);
        BOOST_TEST(src->calls == static_cast<int>(i + 1));
        auto j = json("app");
        BOOST_TEST(j["failures"] == static_cast<int>(i + 1));
        BOOST_TEST(j["last_error"]["class"] == "temporary");
        BOOST_TEST(j["last_error"]["at"] == now);
        BOOST_TEST(j["backoff_until"].get<std::int64_t>() - now == expected[i]);
        // One second before the end: still no request.
        now += expected[i] - 1;
        BOOST_CHECK_THROW(c.get(app()), Error);
        BOOST_TEST(src->calls == static_cast<int>(i + 1));
        now += 1;
    }
    // Success resets the count and the error.
    src->fail.reset();
    c.get(app());
    auto j = json("app");
    BOOST_TEST(j["failures"] == 0);
    BOOST_TEST(j["last_error"].is_null());
    BOOST_TEST(j["backoff_until"] == 0);
}

BOOST_AUTO_TEST_CASE(retry_after_extends_backoff) {
    TokenCache c = cache();
    src->fail = OAuthError(ErrorClass::temporary, "HTTP 429: too many requests", "", "", 429, 60);
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(json("app")["backoff_until"].get<std::int64_t>() - now == 60);
    now += 59;
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 1);
    // A short Retry-After does not shorten the doubling backoff.
    now += 1;
    src->fail = OAuthError(ErrorClass::temporary, "HTTP 429", "", "", 429, 1);
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(json("app")["backoff_until"].get<std::int64_t>() - now == 10);
    // An absurd Retry-After is capped at an hour.
    now += 10;
    src->fail = OAuthError(ErrorClass::temporary, "HTTP 429", "", "", 429, 864000);
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(json("app")["backoff_until"].get<std::int64_t>() - now == 3600);
}

BOOST_AUTO_TEST_CASE(slow_failed_request_does_not_hand_out_a_dying_token) {
    // 300 s left when the refresh starts; the failed request takes 200 s.
    struct Slow : FakeSource {
        std::int64_t* clock = nullptr;
        TokenGrant acquire(const Account& a, const std::string& rt) override {
            *clock += 200;
            return FakeSource::acquire(a, rt);
        }
    };
    auto slow = std::make_shared<Slow>();
    slow->clock = &now;
    TokenCache c(state, slow, [this] { return now; });
    c.get(app());
    now += 3600 - 300;
    slow->fail = temp_error();
    BOOST_CHECK_THROW(c.get(app()), Error);
}

BOOST_AUTO_TEST_CASE(force_refresh_ignores_backoff) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    now += 3600 - 100;
    src->fail = temp_error();
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 2);
    BOOST_CHECK_THROW(c.get(app()), Error);  // backoff
    BOOST_TEST(src->calls == 2);
    src->fail.reset();
    AccessToken t2 = c.force_refresh(app());
    BOOST_TEST(src->calls == 3);
    BOOST_TEST(t2.value != t1.value);
    BOOST_TEST(json("app")["last_error"].is_null());
    // force_refresh always asks, even with a fresh token, and reports a failure.
    c.force_refresh(app());
    BOOST_TEST(src->calls == 4);
    src->fail = config_error();
    BOOST_CHECK_THROW(c.force_refresh(app()), Error);
    BOOST_TEST(src->calls == 5);
}

BOOST_AUTO_TEST_CASE(fingerprint_change_invalidates) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    const std::string fp1 = TokenCache::fingerprint(app());
    // Another client_id.
    cfg = make_config("00000000-0000-0000-0000-000000000002");
    BOOST_TEST(TokenCache::fingerprint(app()) != fp1);
    AccessToken t2 = c.get(app());
    BOOST_TEST(src->calls == 2);
    BOOST_TEST(t2.value != t1.value);
    // The credential file replaced (new mtime/size): invalidates too.
    const std::string fp2 = TokenCache::fingerprint(app());
    write_file(secret, "another-secret-value-456\n");
    BOOST_TEST(TokenCache::fingerprint(app()) != fp2);
    BOOST_TEST(!c.peek(app()).has_value());  // stale entry is not usable
    c.get(app());
    BOOST_TEST(src->calls == 3);
    // Same settings: same fingerprint.
    BOOST_TEST(TokenCache::fingerprint(app()) == TokenCache::fingerprint(app()));
}

BOOST_AUTO_TEST_CASE(fingerprint_change_clears_backoff) {
    TokenCache c = cache();
    src->fail = config_error();
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 1);
    // The administrator fixes the secret: the next get() tries at once.
    write_file(secret, "the-fixed-secret-789\n");
    src->fail.reset();
    c.get(app());
    BOOST_TEST(src->calls == 2);
}

BOOST_AUTO_TEST_CASE(corrupt_entries_are_replaced) {
    TokenCache c = cache();
    AccessToken good = c.get(app());
    const std::string valid = read_file(entry("app"));
    const std::vector<std::string> bad = {
        "",
        "{",
        valid.substr(0, valid.size() / 2),  // truncated
        "null",
        "[]",
        "not json at all",
        R"({"version":2,"account":"app","access_token":"x","expires_at":1,"obtained_at":1,)"
        R"("credential_fingerprint":"f","last_error":null})",
        R"({"version":1,"account":"other","access_token":"x","expires_at":1,"obtained_at":1,)"
        R"("credential_fingerprint":"f","last_error":null})",
        R"({"version":1,"account":"app","access_token":5,"expires_at":1,"obtained_at":1,)"
        R"("credential_fingerprint":"f","last_error":null})",
        R"({"version":1,"account":"app","access_token":"x","expires_at":"soon","obtained_at":1,)"
        R"("credential_fingerprint":"f","last_error":null})",
        R"({"version":1,"account":"app","access_token":"x","expires_at":1,"obtained_at":1,)"
        R"("credential_fingerprint":"f","last_error":{"at":1,"class":"weird","message":"m"}})",
    };
    int calls = src->calls;
    for (const auto& text : bad) {
        BOOST_TEST_CONTEXT("entry: " << text) {
            write_file(entry("app"), text);
            AccessToken t = c.get(app());
            BOOST_TEST(src->calls == ++calls);
            BOOST_TEST(t.value != good.value);
            auto j = json("app");  // replaced by a valid entry
            BOOST_TEST(j["access_token"] == t.value);
            BOOST_TEST(mode_of(entry("app")) == 0600u);
        }
    }
    BOOST_TEST(log_text().find("corrupt") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(loose_mode_own_file_replaced) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    BOOST_REQUIRE(::chmod(entry("app").c_str(), 0644) == 0);
    BOOST_TEST(!c.peek(app()).has_value());
    AccessToken t2 = c.get(app());
    BOOST_TEST(src->calls == 2);
    BOOST_TEST(t2.value != t1.value);
    BOOST_TEST(mode_of(entry("app")) == 0600u);
    BOOST_TEST(log_text().find("not trusted") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(symlink_refused) {
    TokenCache c = cache();
    c.get(app());
    const std::string target = tmp + "/elsewhere.json";
    fs::rename(entry("app"), target);
    BOOST_REQUIRE(::symlink(target.c_str(), entry("app").c_str()) == 0);
    int calls = src->calls;
    try {
        c.get(app());
        BOOST_FAIL("a symlink must be refused");
    } catch (const Error& e) {
        BOOST_TEST(e.error_class() == ErrorClass::temporary);
        BOOST_TEST(std::string(e.what()).find(entry("app")) != std::string::npos);
        BOOST_TEST(std::string(e.what()).find("symbolic link") != std::string::npos);
    }
    BOOST_CHECK_THROW(c.force_refresh(app()), Error);
    BOOST_CHECK_THROW(c.store(app(), TokenGrant{"access-stored-12345678", 3600, ""}), Error);
    BOOST_TEST(src->calls == calls);
    BOOST_TEST(fs::is_symlink(entry("app")));  // left alone
    BOOST_TEST(log_text().find("refusing " + entry("app")) != std::string::npos);
    BOOST_TEST(!c.peek(app()).has_value());
}

BOOST_AUTO_TEST_CASE(foreign_owner_refused) {
    if (::geteuid() != 0) {
        BOOST_TEST_MESSAGE("SKIPPED foreign_owner_refused: needs root to chown a file");
        return;
    }
    TokenCache c = cache();
    c.get(app());
    BOOST_REQUIRE(::chown(entry("app").c_str(), 65534, 65534) == 0);
    int calls = src->calls;
    try {
        c.get(app());
        BOOST_FAIL("a file of another user must be refused");
    } catch (const Error& e) {
        BOOST_TEST(e.error_class() == ErrorClass::temporary);
        std::string m = e.what();
        BOOST_TEST(m.find(entry("app")) != std::string::npos);
        BOOST_TEST(m.find("uid 65534") != std::string::npos);
    }
    BOOST_CHECK_THROW(c.force_refresh(app()), Error);
    BOOST_TEST(src->calls == calls);
    struct stat st {};
    BOOST_REQUIRE(::stat(entry("app").c_str(), &st) == 0);
    BOOST_TEST(st.st_uid == 65534u);  // not replaced
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The deadline bounds the token request: a 12 s source, a 2 s deadline.
BOOST_AUTO_TEST_CASE(deadline_bounds_slow_token_request) {
    TokenCache c = cache();
    src->sleep_ms = 12000;
    auto t0 = std::chrono::steady_clock::now();
    try {
        c.get(app(), deadline_in(std::chrono::seconds(2)));
        BOOST_ERROR("get() returned a token from a source slower than the deadline");
    } catch (const DeadlineError& e) {
        BOOST_TEST(e.error_class() == ErrorClass::temporary);
        BOOST_TEST(std::string(e.what()).find("deadline reached while waiting for the token "
                                              "request of account app") != std::string::npos,
                   e.what());
    }
    BOOST_TEST(seconds_since(t0) < 3.0);
    BOOST_TEST(src->with_deadline == 1);
    // Cut short by our deadline: not Entra's failure, no backoff recorded.
    auto e = c.peek(app());
    BOOST_TEST(!(e && e->last_error));
    // Without a deadline the old call still works (and asks without one).
    src->sleep_ms = 0;
    BOOST_TEST(!c.get(app()).value.empty());
    BOOST_TEST(src->with_deadline == 1);
    // refresh() too.
    src->sleep_ms = 12000;
    t0 = std::chrono::steady_clock::now();
    BOOST_CHECK_THROW(c.refresh(app(), c.get(app()).value, deadline_in(std::chrono::seconds(1))),
                      DeadlineError);
    BOOST_TEST(seconds_since(t0) < 2.0);
}

// A deadline already passed: no request at all.
BOOST_AUTO_TEST_CASE(deadline_passed_no_request) {
    TokenCache c = cache();
    BOOST_CHECK_THROW(c.get(app(), deadline_in(std::chrono::milliseconds(-1))), DeadlineError);
    BOOST_TEST(src->calls == 0);
}

// The lock held by another process: the waiter gives up at the deadline (the
// lock's own timeout is 2 x http_timeout + 10 s = 70 s), or keeps sending the
// current token when it still may.
BOOST_AUTO_TEST_CASE(deadline_bounds_lock_wait) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    int fd = ::open((state + "/tokens/app.lock").c_str(), O_RDWR | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::flock(fd, LOCK_EX) == 0);  // a separate open file: like another process
    now += 3600 - 300;                         // inside the window, 300 s left
    auto t0 = std::chrono::steady_clock::now();
    BOOST_TEST(c.get(app(), deadline_in(std::chrono::seconds(1))).value == t1.value);
    BOOST_TEST(seconds_since(t0) < 1.8);
    now += 250;  // 50 s left: the current token may not be sent
    t0 = std::chrono::steady_clock::now();
    try {
        c.get(app(), deadline_in(std::chrono::seconds(1)));
        BOOST_ERROR("get() must throw");
    } catch (const DeadlineError& e) {
        BOOST_TEST(std::string(e.what()).find(
                       "deadline reached while waiting for the token lock of account app") !=
                   std::string::npos);
    }
    BOOST_TEST(seconds_since(t0) < 1.8);
    BOOST_TEST(seconds_since(t0) > 0.8);
    BOOST_TEST(src->calls == 1);
    ::close(fd);
    BOOST_TEST(c.get(app(), deadline_in(std::chrono::seconds(5))).value != t1.value);
}

// A persistent 535: reject() records it, then get() defers without requests.
BOOST_AUTO_TEST_CASE(reject_records_backoff_without_requests) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    AccessToken t2 = c.refresh(app(), t1.value);  // the forced refresh after the first 535
    BOOST_REQUIRE(t2.value != t1.value);
    BOOST_REQUIRE(src->calls == 2);
    c.reject(app(), t2.value, "535 5.7.3 Authentication unsuccessful");
    for (int i = 0; i < 10; ++i) {
        try {
            c.get(app());
            BOOST_ERROR("get() must throw during the backoff");
        } catch (const Error& e) {
            BOOST_TEST(e.error_class() == ErrorClass::temporary);
            BOOST_TEST(std::string(e.what()).find("535 5.7.3") != std::string::npos, e.what());
        }
        now += 0;
    }
    BOOST_TEST(src->calls == 2);  // no token request during the backoff
    auto e = c.peek(app());
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST(e->access_token.empty());
    BOOST_TEST(e->failures == 1);
    BOOST_TEST(e->backoff_until == now + 5);
    BOOST_TEST(log_text().find(t2.value) == std::string::npos);
    // After the backoff: one request; a second rejection doubles the backoff.
    now += 6;
    AccessToken t3 = c.get(app());
    BOOST_TEST(src->calls == 3);
    c.reject(app(), t3.value, "535 again");
    e = c.peek(app());
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST(e->failures == 1);  // the success in between reset the count
    // A token that is no longer the stored one: nothing is recorded.
    now += 6;
    AccessToken t4 = c.get(app());
    c.reject(app(), t3.value, "stale");
    BOOST_TEST(c.get(app()).value == t4.value);
}

// Disk full: the token is used, the backoff kept in the lock file's marker,
// the cause logged once, and no token request per delivery.
BOOST_AUTO_TEST_CASE(unwritable_cache_keeps_backoff) {
    std::atomic<int> faults{0};
    set_write_fault_hook([&](std::string_view step) {
        if (step != "write") return 0;
        ++faults;
        return ENOSPC;
    });
    struct Unhook {
        ~Unhook() { set_write_fault_hook({}); }
    } unhook;
    TokenCache c = cache();
    AccessToken t1 = c.get(app());  // the request works, the write does not
    BOOST_TEST(!t1.value.empty());
    BOOST_TEST(src->calls == 1);
    for (int i = 0; i < 10; ++i) {
        try {
            c.get(app());
            BOOST_ERROR("get() must throw while the write backoff lasts");
        } catch (const Error& e) {
            BOOST_TEST(e.error_class() == ErrorClass::temporary);
            BOOST_TEST(std::string(e.what()).find("could not be written") != std::string::npos,
                       e.what());
        }
    }
    BOOST_TEST(src->calls == 1);
    auto count_errors = [&] {
        std::istringstream in(log_text());
        int n = 0;
        for (std::string line; std::getline(in, line);)
            if (line.find("error: ") != std::string::npos &&
                line.find("No space left on device") != std::string::npos)
                ++n;
        return n;
    };
    BOOST_TEST(count_errors() == 1);
    // After the backoff: one request, still unwritable: logged at debug only,
    // and the backoff doubles (10 s).
    now += 6;
    BOOST_TEST(!c.get(app()).value.empty());
    BOOST_TEST(src->calls == 2);
    BOOST_TEST(count_errors() == 1);
    now += 6;
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 2);
    // A failed request while unwritable: its backoff is kept too.
    now += 5;
    src->fail = temp_error();
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 3);
    BOOST_CHECK_THROW(c.get(app()), Error);
    BOOST_TEST(src->calls == 3);
    // The disk has room again: the next request is stored and the marker cleared.
    set_write_fault_hook({});
    src->fail.reset();
    now += 6;
    AccessToken t2 = c.get(app());
    BOOST_TEST(src->calls == 4);
    BOOST_TEST(c.get(app()).value == t2.value);
    BOOST_TEST(src->calls == 4);
    BOOST_TEST(!read_write_backoff(state + "/tokens/app.lock").has_value());
    BOOST_TEST(faults >= 3);
}

// A tokens/ directory that group or other may write is refused on every path,
// the warm one included (another user could swap the entry), naming the fix.
BOOST_AUTO_TEST_CASE(loose_directory_refused_on_every_path) {
    TokenCache c = cache();
    c.get(app());  // warm entry
    const int calls = src->calls;
    const std::string dir = state + "/tokens";
    for (mode_t loose : {0770, 0707, 0755}) {
        BOOST_TEST_CONTEXT("mode " << std::oct << loose) {
            BOOST_REQUIRE(::chmod(dir.c_str(), loose) == 0);
            try {
                c.get(app());
                BOOST_ERROR("a loose tokens directory was trusted");
            } catch (const Error& e) {
                BOOST_TEST((e.error_class() == ErrorClass::temporary));
                BOOST_TEST(std::string(e.what()).find(dir) != std::string::npos, e.what());
                BOOST_TEST(std::string(e.what()).find("chmod 700 " + dir) != std::string::npos,
                           e.what());
            }
            BOOST_CHECK_THROW(c.refresh(app(), "x"), Error);  // the locked path too
            BOOST_CHECK_THROW(c.force_refresh(app()), Error);
            BOOST_TEST(mode_of(dir) == loose);  // not silently changed
        }
    }
    BOOST_TEST(src->calls == calls);
    BOOST_REQUIRE(::chmod(dir.c_str(), 0700) == 0);
    BOOST_CHECK_NO_THROW(c.get(app()));
}

BOOST_AUTO_TEST_CASE(stale_temp_file_is_replaced) {
    fs::create_directories(state + "/tokens");
    BOOST_REQUIRE(::chmod((state + "/tokens").c_str(), 0700) == 0);
    write_file(state + "/tokens/.app.json.tmp", "{half");
    TokenCache c = cache();
    c.get(app());
    BOOST_TEST(!fs::exists(state + "/tokens/.app.json.tmp"));
    BOOST_TEST(json("app")["account"] == "app");
}

BOOST_AUTO_TEST_CASE(delegated_without_refresh_token) {
    TokenCache c = cache();
    try {
        c.get(user());
        BOOST_FAIL("must throw");
    } catch (const Error& e) {
        BOOST_TEST(e.error_class() == ErrorClass::configuration);
        BOOST_TEST(std::string(e.what()) ==
                   "no refresh token for account user: run `o365relayctl login user`");
    }
    BOOST_TEST(src->calls == 0);
}

BOOST_AUTO_TEST_CASE(delegated_refresh_token_rotates) {
    TokenCache c = cache();
    c.store(user(), TokenGrant{"access-from-login-1234", 3600, "refresh-from-login"});
    auto j = json("user");
    BOOST_TEST(j["refresh_token"] == "refresh-from-login");
    BOOST_TEST(j["access_token"] == "access-from-login-1234");
    BOOST_TEST(c.get(user()).value == "access-from-login-1234");
    BOOST_TEST(src->calls == 0);
    now += 3600 - 300;
    AccessToken t = c.get(user());
    BOOST_TEST(src->calls == 1);
    BOOST_TEST(src->last_refresh_token == "refresh-from-login");
    BOOST_TEST(json("user")["refresh_token"] == "refresh-1-rotated");
    now += 3600;
    c.get(user());
    BOOST_TEST(src->last_refresh_token == "refresh-1-rotated");
    BOOST_TEST(json("user")["refresh_token"] == "refresh-2-rotated");
    BOOST_TEST(t.value != "access-from-login-1234");
}

BOOST_AUTO_TEST_CASE(delegated_refresh_token_kept_when_not_rotated_or_failed) {
    struct NoRotate : FakeSource {
        TokenGrant acquire(const Account& a, const std::string& rt) override {
            TokenGrant g = FakeSource::acquire(a, rt);
            g.refresh_token.clear();
            return g;
        }
    };
    auto nr = std::make_shared<NoRotate>();
    TokenCache c(state, nr, [this] { return now; });
    c.store(user(), TokenGrant{"access-from-login-1234", 3600, "refresh-from-login"});
    now += 3600;
    c.get(user());
    BOOST_TEST(json("user")["refresh_token"] == "refresh-from-login");
    now += 3600;
    nr->fail = config_error();
    BOOST_CHECK_THROW(c.get(user()), Error);
    BOOST_TEST(json("user")["refresh_token"] == "refresh-from-login");
}

BOOST_AUTO_TEST_CASE(delegated_fingerprint_change_and_refresh_binding) {
    TokenCache c = cache();
    c.store(user(), TokenGrant{"access-from-login-1234", 3600, "refresh-from-login"});
    // The secret changes (same client): access token discarded, refresh token kept.
    write_file(secret, "rotated-client-secret\n");
    auto seen = c.peek(user());
    BOOST_REQUIRE(seen.has_value());
    BOOST_TEST(seen->access_token.empty());
    BOOST_TEST(seen->refresh_token == "refresh-from-login");
    c.get(user());
    BOOST_TEST(src->calls == 1);
    BOOST_TEST(src->last_refresh_token == "refresh-from-login");
    // Another client_id: the refresh token is useless and dropped.
    cfg = make_config("00000000-0000-0000-0000-000000000009");
    try {
        c.get(user());
        BOOST_FAIL("must throw");
    } catch (const Error& e) {
        BOOST_TEST(e.error_class() == ErrorClass::configuration);
        BOOST_TEST(std::string(e.what()).find("o365relayctl login user") != std::string::npos);
    }
    BOOST_TEST(src->calls == 1);
}

BOOST_AUTO_TEST_CASE(refresh_after_rejection) {
    TokenCache c = cache();
    AccessToken t1 = c.get(app());
    // Someone else already replaced the rejected token: no request.
    AccessToken same = c.refresh(app(), "a-token-that-was-rejected");
    BOOST_TEST(same.value == t1.value);
    BOOST_TEST(src->calls == 1);
    // The stored token is the rejected one: a new request.
    AccessToken t2 = c.refresh(app(), t1.value);
    BOOST_TEST(src->calls == 2);
    BOOST_TEST(t2.value != t1.value);
    // Failure: recorded, thrown (the rejected token is not handed back).
    src->fail = temp_error();
    BOOST_CHECK_THROW(c.refresh(app(), t2.value), Error);
    BOOST_TEST(src->calls == 3);
    // Backoff respected.
    BOOST_CHECK_THROW(c.refresh(app(), t2.value), Error);
    BOOST_TEST(src->calls == 3);
    // Yet get() still hands out the (valid, not yet refused) current token.
    BOOST_TEST(c.get(app()).value == t2.value);
}

BOOST_AUTO_TEST_CASE(short_lifetimes) {
    TokenCache c = cache();
    src->expires_in = 300;  // shorter than the window: used, refreshed on every get
    AccessToken t1 = c.get(app());
    BOOST_TEST(t1.expires_at == now + 300);
    c.get(app());
    BOOST_TEST(src->calls == 2);
    src->expires_in = 100;  // cannot be sent at all
    now += 200;
    try {
        c.force_refresh(app());
        BOOST_FAIL("must throw");
    } catch (const Error& e) {
        BOOST_TEST(e.error_class() == ErrorClass::temporary);
        BOOST_TEST(std::string(e.what()).find("expires in 100 s") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(threads_single_flight) {
    src->sleep_ms = 50;
    TokenCache c(state, src);  // system clock
    std::vector<std::thread> th;
    std::vector<std::string> got(16);
    for (int i = 0; i < 16; ++i)
        th.emplace_back([&, i] { got[i] = c.get(app()).value; });
    for (auto& t : th)
        t.join();
    BOOST_TEST(src->calls == 1);
    for (const auto& g : got)
        BOOST_TEST(g == got[0]);
}

BOOST_AUTO_TEST_CASE(store_replaces_entry) {
    TokenCache c = cache();
    c.get(app());
    c.store(app(), TokenGrant{"access-stored-12345678", 1800, ""});
    BOOST_TEST(c.get(app()).value == "access-stored-12345678");
    BOOST_TEST(c.get(app()).expires_at == now + 1800);
    BOOST_TEST(src->calls == 1);
}

BOOST_AUTO_TEST_CASE(tokens_never_logged) {
    TokenCache c = cache();
    c.store(user(), TokenGrant{"access-from-login-1234", 3600, "refresh-from-login"});
    AccessToken t = c.get(app());
    now += 3600;
    AccessToken t2 = c.get(user());
    src->fail = OAuthError(ErrorClass::temporary, "echo of refresh-1-rotated by a peer");
    now += 3600;
    BOOST_CHECK_THROW(c.get(user()), Error);
    const std::string log = log_text();
    BOOST_TEST(!log.empty());
    BOOST_TEST(log.find(t.value) == std::string::npos);
    BOOST_TEST(log.find(t2.value) == std::string::npos);
    BOOST_TEST(log.find("refresh-from-login") == std::string::npos);
    BOOST_TEST(log.find("refresh-1-rotated") == std::string::npos);
    // Nor in the recorded error.
    BOOST_TEST(read_file(entry("user")).find("\"message\":\"echo of refresh-1-rotated") ==
               std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
