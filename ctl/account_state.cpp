// account_state: see account_state.hpp.
#include "account_state.hpp"

#include <ctime>
#include <type_traits>

#include "error.hpp"

namespace o365::ctl {

namespace {

constexpr std::int64_t kMinLeft = 120;  // the token cache never hands out less

// The account's delivery method. Until the configuration knows `method`
// (Graph delivery), every account delivers by SMTP.
template <class A>
std::string method_of(const A& a) {
    if constexpr (requires { a.method; })
        return a.method == std::remove_cvref_t<decltype(a.method)>::graph ? "graph" : "smtp";
    else
        return "smtp";
}

}  // namespace

std::string utc_time(std::int64_t t) {
    if (t <= 0) return "never";
    char buf[64];
    std::time_t tt = static_cast<std::time_t>(t);
    struct tm tmv {};
    ::gmtime_r(&tt, &tmv);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tmv);
    return buf;
}

bool AccountState::usable() const {
    return token == TokenState::valid && !last_error && token_error.empty();
}

std::string AccountState::token_summary() const {
    if (!token_error.empty()) return "unreadable";
    if (last_error && backoff_seconds_left > 0)
        return "backoff " + std::to_string(backoff_seconds_left) + " s";
    if (last_error) return "failed";
    switch (token) {
        case TokenState::valid:
            return "valid " + std::to_string(token_seconds_left / 60) + " min";
        case TokenState::expired:
            return "expired";
        case TokenState::none:
            break;
    }
    return refresh_token_missing ? "none (login)" : "none";
}

AccountState gather(const Account& a, const TokenCache& cache, const Counters& counters,
                    std::int64_t now) {
    AccountState s;
    s.account = &a;
    s.method = method_of(a);
    // 1. The token, as cached (peek never refreshes).
    try {
        if (auto e = cache.peek(a)) {
            if (!e->access_token.empty()) {
                s.token_seconds_left = e->expires_at - now;
                s.token = s.token_seconds_left > kMinLeft ? TokenState::valid : TokenState::expired;
            }
            s.last_error = e->last_error;
            s.backoff_seconds_left = std::max<std::int64_t>(e->backoff_until - now, 0);
            s.refresh_token_missing = a.flow == Flow::delegated && e->refresh_token.empty();
        } else {
            s.refresh_token_missing = a.flow == Flow::delegated;
        }
    } catch (const std::exception& e) {
        s.token_error = e.what();
    }
    // 2. The counters.
    try {
        s.counters = counters.read(a.name);
    } catch (const std::exception& e) {
        s.counters_error = e.what();
    }
    return s;
}

}  // namespace o365::ctl
