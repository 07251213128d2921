#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "config.hpp"
#include "error.hpp"
#include "health.hpp"
#include "refresher.hpp"

using namespace o365;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const Config> two_accounts() {
    return parse_config(
        "[relay]\nlog = stderr\nuser = root\n[entra]\ntenant = t.example\nclient_id = c\n"
        "client_secret_file = /nonexistent\n[account a]\nmailbox = a@x.example\n"
        "[account b]\nmailbox = b@x.example\n",
        "test.conf");
}

bool wait_for(const std::function<bool()>& f) {
    for (int i = 0; i < 500; ++i) {
        if (f()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(refresher)

BOOST_AUTO_TEST_CASE(refreshes_every_account_and_goes_on_after_errors) {
    auto cfg = two_accounts();
    std::mutex mu;
    std::map<std::string, int> calls;
    Refresher r([&] { return cfg; },
                [&](const Account& a) {
                    {
                        std::lock_guard lock(mu);
                        ++calls[a.name];
                    }
                    if (a.name == "a") throw Error(ErrorClass::configuration, "AADSTS7000215");
                },
                20ms);
    r.start();
    BOOST_TEST(wait_for([&] { return r.rounds() >= 3; }));
    r.stop();
    std::lock_guard lock(mu);
    BOOST_TEST(calls["a"] >= 3);
    BOOST_TEST(calls["b"] >= 3);  // an error for a does not stop b
}

BOOST_AUTO_TEST_CASE(poke_runs_a_round_now_and_stop_is_prompt) {
    auto cfg = two_accounts();
    std::atomic<int> calls{0};
    Refresher r([&] { return cfg; }, [&](const Account&) { ++calls; }, 1h);
    r.start();  // the first round runs at once
    BOOST_TEST(wait_for([&] { return r.rounds() == 1; }));
    r.poke();
    BOOST_TEST(wait_for([&] { return r.rounds() == 2; }));
    BOOST_TEST(calls.load() == 4);
    auto t0 = std::chrono::steady_clock::now();
    r.stop();  // must not wait for the 1 h interval
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 2s));
}

BOOST_AUTO_TEST_CASE(health_decision) {
    const std::int64_t now = 1'700'000'000;
    BOOST_TEST(!AccountServices::unhealthy(std::nullopt, now));
    CacheEntry e;
    BOOST_TEST(!AccountServices::unhealthy(e, now));  // no error recorded
    e.last_error = LastError{now - 10, ErrorClass::temporary, "Entra unreachable"};
    BOOST_TEST(!AccountServices::unhealthy(e, now));  // temporary: not the account's fault
    e.last_error = LastError{now - 10, ErrorClass::configuration, "AADSTS7000215: bad secret"};
    BOOST_TEST(AccountServices::unhealthy(e, now).value_or("") == "AADSTS7000215: bad secret");
    e.access_token = "tok";
    e.expires_at = now + 121;  // still usable by the transport
    BOOST_TEST(!AccountServices::unhealthy(e, now));
    e.expires_at = now + 120;  // the transport would not send it any more
    BOOST_TEST(AccountServices::unhealthy(e, now).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
