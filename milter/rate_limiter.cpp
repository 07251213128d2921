#include "rate_limiter.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.hpp"

namespace o365 {

namespace {

std::int64_t system_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

std::size_t slot(std::int64_t epoch, int n) {
    std::int64_t m = epoch % n;
    if (m < 0) m += n;
    return static_cast<std::size_t>(m);
}

}  // namespace

RateLimiter::RateLimiter(Clock clock) : clock_(clock ? std::move(clock) : Clock(system_seconds)) {}

long RateLimiter::sum(const Bucket* b, int n, std::int64_t now_epoch) {
    long total = 0;
    for (int i = 0; i < n; ++i) {
        if (b[i].epoch < 0) continue;
        std::int64_t age = now_epoch - b[i].epoch;
        if (age < n) total += b[i].count;  // a clock that went back keeps its counts
    }
    return total;
}

void RateLimiter::add(Bucket* b, int n, std::int64_t epoch, long count) {
    Bucket& k = b[slot(epoch, n)];
    if (k.epoch != epoch) {
        k.epoch = epoch;
        k.count = 0;
    }
    k.count += count;
}

RateLimiter::Usage RateLimiter::usage_locked(const std::string& account, std::int64_t now) const {
    auto it = counters_.find(account);
    if (it == counters_.end()) return {};
    Usage u;
    u.messages_last_minute = sum(it->second.seconds.data(), kSecondBuckets, now);
    u.recipients_last_day = sum(it->second.minutes.data(), kMinuteBuckets, floor_div(now, 60));
    return u;
}

RateLimiter::Usage RateLimiter::usage(const std::string& account) const {
    std::int64_t now = clock_();
    std::lock_guard lock(mu_);
    return usage_locked(account, now);
}

RateLimiter::Verdict RateLimiter::check_locked(const std::string& account, long recipients,
                                               const Limits& limits, std::int64_t now) const {
    Usage u = usage_locked(account, now);
    if (limits.messages_per_minute > 0 && u.messages_last_minute + 1 > limits.messages_per_minute)
        return Verdict::messages_per_minute;
    if (limits.recipients_per_day > 0 &&
        u.recipients_last_day + recipients > limits.recipients_per_day)
        return Verdict::recipients_per_day;
    return Verdict::ok;
}

RateLimiter::Verdict RateLimiter::check(const std::string& account, long recipients,
                                        const Limits& limits) const {
    std::int64_t now = clock_();
    std::lock_guard lock(mu_);
    return check_locked(account, recipients, limits, now);
}

RateLimiter::Verdict RateLimiter::try_record(const std::string& account, long recipients,
                                             const Limits& limits) {
    std::int64_t now = clock_();
    std::lock_guard lock(mu_);
    Verdict v = check_locked(account, recipients, limits, now);
    if (v != Verdict::ok) return v;
    Counters& c = counters_[account];
    add(c.seconds.data(), kSecondBuckets, now, 1);
    if (recipients > 0) add(c.minutes.data(), kMinuteBuckets, floor_div(now, 60), recipients);
    return Verdict::ok;
}

void RateLimiter::save(const std::string& path) const {
    nlohmann::json j;
    j["version"] = 1;
    {
        std::lock_guard lock(mu_);
        j["saved_at"] = clock_();
        nlohmann::json accounts = nlohmann::json::object();
        for (const auto& [name, c] : counters_) {
            nlohmann::json secs = nlohmann::json::array();
            for (const Bucket& b : c.seconds)
                if (b.epoch >= 0 && b.count > 0) secs.push_back({b.epoch, b.count});
            nlohmann::json mins = nlohmann::json::array();
            for (const Bucket& b : c.minutes)
                if (b.epoch >= 0 && b.count > 0) mins.push_back({b.epoch, b.count});
            accounts[name] = {{"seconds", secs}, {"minutes", mins}};
        }
        j["accounts"] = accounts;
    }
    std::string text = j.dump() + "\n";
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        throw Error(ErrorClass::temporary, "cannot write " + tmp + ": " + std::strerror(errno));
    std::size_t off = 0;
    while (off < text.size()) {
        ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw Error(ErrorClass::temporary, "cannot write " + tmp + ": " + std::strerror(e));
        }
        off += static_cast<std::size_t>(n);
    }
    ::fsync(fd);
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorClass::temporary, "cannot rename " + tmp + ": " + std::strerror(e));
    }
}

void RateLimiter::load(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw Error(ErrorClass::temporary, "cannot read " + path + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    std::unordered_map<std::string, Counters> loaded;
    std::int64_t now = clock_();
    try {
        auto j = nlohmann::json::parse(ss.str());
        if (j.at("version").get<int>() != 1) throw Error(ErrorClass::temporary, "unknown version");
        for (const auto& [name, v] : j.at("accounts").items()) {
            Counters c;
            for (const auto& p : v.at("seconds")) {
                std::int64_t e = p.at(0).get<std::int64_t>();
                long n = p.at(1).get<long>();
                if (e >= 0 && n > 0 && now - e < kSecondBuckets)
                    add(c.seconds.data(), kSecondBuckets, e, n);
            }
            for (const auto& p : v.at("minutes")) {
                std::int64_t e = p.at(0).get<std::int64_t>();
                long n = p.at(1).get<long>();
                if (e >= 0 && n > 0 && floor_div(now, 60) - e < kMinuteBuckets)
                    add(c.minutes.data(), kMinuteBuckets, e, n);
            }
            loaded.emplace(name, c);
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorClass::temporary, path + ": malformed rate counter file: " + e.what());
    }
    std::lock_guard lock(mu_);
    counters_ = std::move(loaded);
}

}  // namespace o365
