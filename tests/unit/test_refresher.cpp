#include <boost/test/unit_test.hpp>

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "config.hpp"
#include "error.hpp"
#include "health.hpp"
#include "refresher.hpp"
#include "token.hpp"

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

// Account s delivers by SMTP, account g by Microsoft Graph.
std::shared_ptr<const Config> smtp_and_graph(const std::string& graph_section = "") {
    return parse_config(
        "[relay]\nlog = stderr\nuser = root\n[entra]\ntenant = t.example\nclient_id = c\n"
        "client_secret_file = /nonexistent\n" +
            graph_section +
            "[account s]\nmailbox = s@x.example\n"
            "[account g]\nmailbox = g@x.example\nmethod = graph\n",
        "test.conf");
}

// A token source that records what it was asked for and refuses the Graph
// audience's credentials (as Entra would for a missing consent).
class RecordingSource : public TokenSource {
  public:
    TokenGrant acquire(const Account& a, const std::string&) override {
        {
            std::lock_guard lock(mu);
            asked[a.name] = a.entra.scope;
        }
        if (a.name.find('+') != std::string::npos)
            throw Error(ErrorClass::configuration, "AADSTS65001: no consent for Graph");
        TokenGrant g;
        g.access_token = "tok-" + a.name;
        g.expires_in = 3600;
        return g;
    }
    std::mutex mu;
    std::map<std::string, std::string> asked;  // cache entry name -> scope
};

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

BOOST_AUTO_TEST_CASE(refreshes_the_audience_each_method_needs) {
    for (const auto& [section, scope] :
         {std::pair<std::string, std::string>{"", "https://graph.microsoft.com/.default"},
          {"[graph]\nscope = https://graph.example/.default\n",
           "https://graph.example/.default"}}) {
        auto cfg = smtp_and_graph(section);
        std::mutex mu;
        std::map<std::string, std::string> seen;  // name -> scope
        Refresher r([&] { return cfg; },
                    [&](const Account& a) {
                        std::lock_guard lock(mu);
                        seen[a.name] = a.entra.scope;
                    },
                    1h);
        r.start();
        BOOST_TEST(wait_for([&] { return r.rounds() >= 1; }));
        r.stop();
        std::lock_guard lock(mu);
        BOOST_TEST(seen.size() == 2u);
        BOOST_TEST(seen.count("s") == 1u);        // SMTP: the account as configured
        BOOST_TEST(seen["s"] == kAppOnlyScope);   // with the Exchange scope
        BOOST_TEST(seen.count("g") == 0u);        // never the SMTP token of a Graph account
        BOOST_TEST(seen.count("g+graph") == 1u);  // the Graph entry
        BOOST_TEST(seen["g+graph"] == scope);     // with the Graph scope
    }
}

BOOST_AUTO_TEST_CASE(health_probe_reads_the_audience_of_the_method) {
    char tmpl[] = "/tmp/o365-health-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(tmpl));
    const std::string dir = tmpl;
    auto cfg =
        parse_config("[relay]\nlog = stderr\nuser = root\nstate_dir = " + dir +
                         "\n[entra]\ntenant = t.example\nclient_id = c\n"
                         "client_secret_file = /nonexistent\n[account s]\nmailbox = s@x.example\n"
                         "[account g]\nmailbox = g@x.example\nmethod = graph\n",
                     "test.conf");
    auto source = std::make_shared<RecordingSource>();
    {
        AccountServices services(cfg, source);
        services.start();
        // The refresher asks for the SMTP token of s and the Graph token of g;
        // the Graph credentials are refused.
        BOOST_TEST(wait_for([&] {
            std::lock_guard lock(source->mu);
            return source->asked.size() == 2u;
        }));
        services.stop();
        {
            std::lock_guard lock(source->mu);
            BOOST_TEST(source->asked.count("s") == 1u);
            BOOST_TEST(source->asked.count("g+graph") == 1u);
            BOOST_TEST(source->asked["g+graph"] == kGraphAppOnlyScope);
        }
        auto probe = services.health_probe();
        const Account* s = nullptr;
        const Account* g = nullptr;
        for (const Account& a : cfg->accounts)
            (a.name == "s" ? s : g) = &a;
        BOOST_TEST(!probe(*s).has_value());  // SMTP token obtained
        // g's health is that of its Graph token, whose credentials Entra refused.
        BOOST_TEST(probe(*g).value_or("").find("AADSTS65001") != std::string::npos);
    }
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
