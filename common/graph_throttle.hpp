// graph_throttle: what every process of one account shares so that it keeps
// Microsoft Graph's per-mailbox limits (docs/design.md section "Graph delivery"):
//
// - The throttle file <state_dir>/graph/<account>.throttle holds the unix time
//   until which no process sends a Graph request for the account (after a 429
//   with Retry-After). blocked_until() is checked before every request;
//   hold_off() writes it atomically (temporary file + rename) and never
//   shortens a later time already stored. A missing, unreadable or garbled
//   file means "not throttled"; a file that cannot be written is logged
//   (warning) and otherwise ignored: the 429 itself still defers the delivery.
// - Concurrency slots: at most kGraphSlots requests in flight per account
//   across processes. acquire_slot() takes one of the lock files
//   <state_dir>/graph/<account>.slot0..3 (flock LOCK_EX | LOCK_NB, polling
//   every 20 ms) and holds it until the GraphSlot is destroyed (RAII; the lock
//   also ends with the process). It throws DeadlineError (temporary) when no
//   slot frees up before the deadline, Error(temporary) naming the file when a
//   slot file cannot be opened.
// - The directory <state_dir>/graph is created (0700) when missing.
// Thread-safe: the files are the shared state; every call opens its own fds.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "deadline.hpp"
#include "unique_fd.hpp"

namespace o365 {

inline constexpr int kGraphSlots = 4;

class GraphThrottle {
  public:
    using Clock = std::function<std::int64_t()>;  // unix seconds; default the system clock

    GraphThrottle(std::string state_dir, std::string account, Clock clock = {});

    // The unix time until which requests wait, when that is still ahead.
    std::optional<std::int64_t> blocked_until() const;

    // No request for `seconds` from now (Retry-After).
    void hold_off(int seconds);

    const std::string& path() const { return path_; }

  private:
    std::string dir_;
    std::string path_;
    Clock clock_;
};

class GraphSlot {
  public:
    explicit GraphSlot(UniqueFd fd, int index) : fd_(std::move(fd)), index_(index) {}
    int index() const { return index_; }

  private:
    UniqueFd fd_;  // holds the flock
    int index_;
};

GraphSlot acquire_slot(const std::string& state_dir, const std::string& account,
                       std::optional<Deadline> deadline);

}  // namespace o365
