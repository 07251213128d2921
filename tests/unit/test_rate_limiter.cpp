#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include <unistd.h>

#include "error.hpp"
#include "rate_limiter.hpp"

using o365::RateLimiter;
using V = RateLimiter::Verdict;

namespace {

struct FakeClock {
    std::shared_ptr<std::int64_t> t = std::make_shared<std::int64_t>(1'700'000'000);
    RateLimiter::Clock fn() const {
        auto p = t;
        return [p] { return *p; };
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(rate_limiter)

BOOST_AUTO_TEST_CASE(messages_per_minute_window_edges) {
    FakeClock c;
    // Start on a whole minute so that the second buckets are easy to follow.
    *c.t = 1'700'000'040;  // = 28333334 * 60
    RateLimiter r(c.fn());
    RateLimiter::Limits lim{3, 0};
    BOOST_TEST((r.try_record("a", 1, lim) == V::ok));  // t0
    *c.t += 10;
    BOOST_TEST((r.try_record("a", 1, lim) == V::ok));  // t0+10
    BOOST_TEST((r.try_record("a", 1, lim) == V::ok));  // t0+10
    BOOST_TEST((r.try_record("a", 1, lim) == V::messages_per_minute));
    BOOST_TEST(r.usage("a").messages_last_minute == 3);
    // Another account is independent.
    BOOST_TEST((r.try_record("b", 1, lim) == V::ok));
    // t0+59: the first message still counts.
    *c.t += 49;
    BOOST_TEST((r.check("a", 0, lim) == V::messages_per_minute));
    // t0+60: it no longer does.
    *c.t += 1;
    BOOST_TEST(r.usage("a").messages_last_minute == 2);
    BOOST_TEST((r.try_record("a", 1, lim) == V::ok));
    BOOST_TEST((r.try_record("a", 1, lim) == V::messages_per_minute));
    // t0+70: both messages of t0+10 are gone.
    *c.t += 10;
    BOOST_TEST(r.usage("a").messages_last_minute == 1);
}

BOOST_AUTO_TEST_CASE(recipients_per_day_rolling_24h) {
    FakeClock c;
    *c.t = 1'700'000'040;  // a whole minute
    std::int64_t t0 = *c.t;
    RateLimiter r(c.fn());
    RateLimiter::Limits lim{0, 10};
    BOOST_TEST((r.try_record("a", 4, lim) == V::ok));
    *c.t = t0 + 3600;
    BOOST_TEST((r.try_record("a", 6, lim) == V::ok));  // exactly at the limit
    BOOST_TEST((r.try_record("a", 1, lim) == V::recipients_per_day));
    BOOST_TEST((r.check("a", 1, lim) == V::recipients_per_day));
    BOOST_TEST((r.check("a", 0, lim) == V::ok));
    // 23 h 59 min 59 s after the first message: still counted.
    *c.t = t0 + 86400 - 1;
    BOOST_TEST(r.usage("a").recipients_last_day == 10);
    // 24 h after: the first 4 have aged out (minute granularity).
    *c.t = t0 + 86400;
    BOOST_TEST(r.usage("a").recipients_last_day == 6);
    BOOST_TEST((r.try_record("a", 4, lim) == V::ok));
    BOOST_TEST((r.try_record("a", 1, lim) == V::recipients_per_day));
    // 24 h after the second message: those 6 are gone too.
    *c.t = t0 + 3600 + 86400;
    BOOST_TEST(r.usage("a").recipients_last_day == 4);
}

BOOST_AUTO_TEST_CASE(minute_granularity_of_the_day_window) {
    FakeClock c;
    *c.t = 1'700'000'040 + 59;  // last second of a minute
    std::int64_t t0 = *c.t;
    RateLimiter r(c.fn());
    RateLimiter::Limits lim{0, 100};
    BOOST_TEST((r.try_record("a", 5, lim) == V::ok));
    // Counted in its minute: ages out 24 h after the start of that minute.
    *c.t = t0 - 59 + 86400 - 1;
    BOOST_TEST(r.usage("a").recipients_last_day == 5);
    *c.t = t0 - 59 + 86400;
    BOOST_TEST(r.usage("a").recipients_last_day == 0);
}

BOOST_AUTO_TEST_CASE(limits_off_still_count) {
    FakeClock c;
    RateLimiter r(c.fn());
    RateLimiter::Limits off{0, 0};
    for (int i = 0; i < 100; ++i)
        BOOST_TEST((r.try_record("a", 2, off) == V::ok));
    BOOST_TEST(r.usage("a").messages_last_minute == 100);
    BOOST_TEST(r.usage("a").recipients_last_day == 200);
    // Turning a limit on (a reload) sees the truth.
    BOOST_TEST((r.check("a", 0, {50, 0}) == V::messages_per_minute));
    BOOST_TEST((r.check("a", 1, {0, 200}) == V::recipients_per_day));
    BOOST_TEST((r.check("nobody", 1, {1, 1}) == V::ok));
}

BOOST_AUTO_TEST_CASE(messages_limit_is_checked_before_recipients) {
    FakeClock c;
    RateLimiter r(c.fn());
    BOOST_TEST((r.try_record("a", 1, {1, 1}) == V::ok));
    BOOST_TEST((r.try_record("a", 1, {1, 1}) == V::messages_per_minute));
    *c.t += 60;
    BOOST_TEST((r.try_record("a", 1, {1, 1}) == V::recipients_per_day));
}

BOOST_AUTO_TEST_CASE(concurrent_try_record_is_exact) {
    RateLimiter r;  // system clock
    RateLimiter::Limits lim{0, 1000};
    std::vector<std::thread> threads;
    std::atomic<int> ok{0}, refused{0};
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 500; ++i) {
                if (r.try_record("a", 1, lim) == V::ok)
                    ++ok;
                else
                    ++refused;
            }
        });
    for (auto& t : threads)
        t.join();
    BOOST_TEST(ok.load() == 1000);
    BOOST_TEST(refused.load() == 3000);
    BOOST_TEST(r.usage("a").recipients_last_day == 1000);
}

BOOST_AUTO_TEST_CASE(save_and_load) {
    FakeClock c;
    auto dir = std::filesystem::temp_directory_path() / ("o365rl-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string path = (dir / "rate.json").string();
    {
        RateLimiter r(c.fn());
        BOOST_TEST((r.try_record("noreply", 7, {0, 0}) == V::ok));
        *c.t += 30;
        BOOST_TEST((r.try_record("noreply", 3, {0, 0}) == V::ok));
        r.save(path);
    }
    *c.t += 40;  // the first message left the minute window, not the day
    RateLimiter r2(c.fn());
    r2.load(path);
    BOOST_TEST(r2.usage("noreply").messages_last_minute == 1);
    BOOST_TEST(r2.usage("noreply").recipients_last_day == 10);
    // A malformed file is an error that names the file, and keeps nothing.
    {
        std::FILE* f = std::fopen(path.c_str(), "w");
        std::fputs("{\"version\":1,\"accounts\":{\"x\":{\"seconds\":[[1,", f);
        std::fclose(f);
    }
    BOOST_CHECK_EXCEPTION(r2.load(path), o365::Error, [&](const o365::Error& e) {
        return std::string(e.what()).find(path) != std::string::npos;
    });
    BOOST_CHECK_THROW(r2.load((dir / "missing.json").string()), o365::Error);
    std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
