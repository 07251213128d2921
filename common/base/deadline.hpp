// deadline: a point in time (monotonic clock) by which an operation must end,
// and the few helpers that bound waits and timeouts by it.
//
// Contract:
// - Deadline is a std::chrono::steady_clock::time_point (immune to changes of
//   the wall clock). An absent deadline is std::optional<Deadline>{}: no bound.
// - remaining() is never negative; bounded(own, deadline) is min(own, remaining).
// - DeadlineError is the Error(temporary) thrown when a wait or a request
//   could not end before the deadline; its message names what was waited for,
//   e.g. "deadline reached while waiting for the token lock of account app".
// Thread-safe: values and pure functions only.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>

#include "error.hpp"

namespace o365 {

using Deadline = std::chrono::steady_clock::time_point;

// A deadline `d` from now.
inline Deadline deadline_in(std::chrono::milliseconds d) {
    return std::chrono::steady_clock::now() + d;
}

// Time left until `d`; zero when it has passed.
inline std::chrono::milliseconds remaining(Deadline d) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(d - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(0));
}

// True when `d` is set and at most `margin` away (or past).
inline bool expired(const std::optional<Deadline>& d,
                    std::chrono::milliseconds margin = std::chrono::milliseconds(0)) {
    return d && remaining(*d) <= margin;
}

// min(own, time left until `d`); `own` when there is no deadline.
inline std::chrono::milliseconds bounded(std::chrono::milliseconds own,
                                         const std::optional<Deadline>& d) {
    return d ? std::min(own, remaining(*d)) : own;
}

// The time left in whole seconds, rounded up (for messages).
inline long long remaining_seconds(Deadline d) {
    return (remaining(d).count() + 999) / 1000;
}

class DeadlineError : public Error {
  public:
    // what: "the token lock of account app" -> "deadline reached while waiting for ..."
    explicit DeadlineError(const std::string& what)
        : Error(ErrorClass::temporary, "deadline reached while waiting for " + what) {}
};

}  // namespace o365
