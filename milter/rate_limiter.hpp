// rate_limiter: per-account counters for the milter's [policy] rate limits
// (messages_per_minute, recipients_per_day).
//
// Contract:
// - Windows. Messages: a sliding 60 s window in 1-second buckets: a message
//   recorded at second S counts while now - S < 60 (so at S+59 it still counts,
//   at S+60 it no longer does). Recipients: a rolling 24 h window in 1-minute
//   buckets: recipients recorded in minute M (= floor(t/60)) count while
//   now_minute - M < 1440, i.e. they age out between 23 h 59 min and 24 h after
//   they were counted. Memory per account is fixed (60 + 1440 buckets), whatever
//   the traffic.
// - try_record() checks and records atomically: of many threads racing for the
//   last free slot exactly one wins, so the counts are exact.
// - A limit of 0 means "off" (messages_per_minute = 0 disables that check;
//   recipients_per_day = 0 disables that one too). Messages are counted even when
//   a limit is off, so that a reload that turns a limit on starts from the truth.
// - Persistence: counters live in the process. save()/load() write/read a JSON
//   snapshot (the milter saves it on clean shutdown and loads it at start, so a
//   restart does not hand an account a fresh day). A crash loses at most what was
//   counted since the last save. load() ignores buckets that have aged out and
//   throws o365::Error (temporary) for an unreadable or malformed file.
// - The clock is injectable (seconds since the epoch) for tests.
// Thread-safe: one mutex per limiter (held for a few hundred ns per call).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace o365 {

class RateLimiter {
  public:
    using Clock = std::function<std::int64_t()>;  // seconds since the epoch

    struct Limits {
        long messages_per_minute = 0;  // 0 = off
        long recipients_per_day = 0;   // 0 = off
    };

    enum class Verdict { ok, messages_per_minute, recipients_per_day };

    struct Usage {
        long messages_last_minute = 0;
        long recipients_last_day = 0;
    };

    // Default clock: the system clock.
    explicit RateLimiter(Clock clock = {});

    // The account's current counts.
    Usage usage(const std::string& account) const;

    // Would one more message with `recipients` recipients stay within the limits?
    // Does not record anything (an early check at MAIL/RCPT time).
    Verdict check(const std::string& account, long recipients, const Limits& limits) const;

    // Atomically: if one more message with `recipients` recipients stays within
    // the limits, records it and returns ok; otherwise records nothing and says
    // which limit would be exceeded (messages first).
    Verdict try_record(const std::string& account, long recipients, const Limits& limits);

    // Snapshot to/from a file (see the contract above). save() writes a temp
    // file and renames it; both throw o365::Error on I/O trouble.
    void save(const std::string& path) const;
    void load(const std::string& path);

    std::int64_t now() const { return clock_(); }

  private:
    static constexpr int kSecondBuckets = 60;
    static constexpr int kMinuteBuckets = 1440;

    struct Bucket {
        std::int64_t epoch = -1;  // the second or minute this bucket holds
        long count = 0;
    };

    struct Counters {
        std::array<Bucket, kSecondBuckets> seconds{};
        std::array<Bucket, kMinuteBuckets> minutes{};
    };

    static long sum(const Bucket* b, int n, std::int64_t now_epoch);
    static void add(Bucket* b, int n, std::int64_t epoch, long count);
    Usage usage_locked(const std::string& account, std::int64_t now) const;
    Verdict check_locked(const std::string& account, long recipients, const Limits& limits,
                         std::int64_t now) const;

    Clock clock_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, Counters> counters_;
};

}  // namespace o365
