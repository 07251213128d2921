// token_lookup: cost of a warm-cache token lookup as the transport does it.
//
//   token_lookup CONF ITERATIONS [SEED]
//
// Loads CONF (not measured), warms the cache of every account with an
// in-process source issuing JWT-sized tokens (not measured; files that are
// already warm are kept), then times ITERATIONS lookups of random accounts:
// lookup = Config::find_account(name) + TokenCache::get() (open, read, parse,
// validate the entry; fingerprint of the credential settings). Any token
// request during the measured phase is an error (the cache was not warm).
// Prints accounts, iterations, the first lookup, mean, p50, p99 and max in
// microseconds.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "config.hpp"
#include "log.hpp"
#include "token_cache.hpp"

using namespace o365;

namespace {

// Issues tokens of the size Entra issues (a JWT of about 1.6 KB).
struct JwtSizedSource : TokenSource {
    std::atomic<long> calls{0};
    TokenGrant acquire(const Account& a, const std::string&) override {
        long n = ++calls;
        TokenGrant g;
        g.access_token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + std::string(1200, 'x') + "." +
                         a.name + "." + std::to_string(n) + std::string(340, 'y');
        g.expires_in = 3599;
        return g;
    }
};

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: token_lookup CONF ITERATIONS [SEED]\n";
        return 64;
    }
    try {
        auto cfg = load_config(argv[1]);
        log_init("stderr", LogLevel::warning, "token_lookup");
        const long iterations = std::stol(argv[2]);
        const unsigned seed = argc > 3 ? static_cast<unsigned>(std::stoul(argv[3])) : 1;
        auto src = std::make_shared<JwtSizedSource>();
        TokenCache cache(cfg->relay.state_dir, src);

        auto w0 = std::chrono::steady_clock::now();
        for (const Account& a : cfg->accounts)
            cache.get(a);
        auto w1 = std::chrono::steady_clock::now();
        std::cerr << "warm-up: " << src->calls << " token(s) written in "
                  << std::chrono::duration<double>(w1 - w0).count() << " s\n";
        const long warm_calls = src->calls;

        // Account names as the transport gets them (-n ACCOUNT), in random order.
        std::mt19937 rng(seed);
        std::uniform_int_distribution<std::size_t> pick(0, cfg->accounts.size() - 1);
        std::vector<std::string> names;
        names.reserve(static_cast<std::size_t>(iterations));
        for (long i = 0; i < iterations; ++i)
            names.push_back(cfg->accounts[pick(rng)].name);

        std::vector<double> us;
        us.reserve(names.size());
        std::size_t sink = 0;
        for (const std::string& name : names) {
            auto t0 = std::chrono::steady_clock::now();
            const Account* a = cfg->find_account(name);
            AccessToken tok = cache.get(*a);
            auto t1 = std::chrono::steady_clock::now();
            sink += tok.value.size();
            us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
        if (src->calls != warm_calls) {
            std::cerr << "error: " << (src->calls - warm_calls)
                      << " token request(s) during the measurement: the cache was not warm\n";
            return 1;
        }
        double sum = 0;
        for (double v : us)
            sum += v;
        std::printf(
            "accounts=%zu iterations=%ld first_us=%.1f mean_us=%.2f p50_us=%.2f p99_us=%.2f "
            "max_us=%.1f (bytes=%zu)\n",
            cfg->accounts.size(), iterations, us.front(), sum / static_cast<double>(us.size()),
            percentile(us, 0.50), percentile(us, 0.99), *std::max_element(us.begin(), us.end()),
            sink);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "token_lookup: " << e.what() << "\n";
        return 1;
    }
}
