#include "graph_throttle.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "error.hpp"
#include "log.hpp"

namespace o365 {

namespace {

std::string graph_dir(const std::string& state_dir) {
    return state_dir + "/graph";
}

void ensure_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error(ErrorClass::temporary,
                    "cannot create " + dir + ": " + std::string(std::strerror(errno)));
}

std::int64_t system_now() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

std::optional<std::int64_t> read_time(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd) return std::nullopt;
    char buf[32] = {0};
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0) return std::nullopt;
    char* end = nullptr;
    long long v = std::strtoll(buf, &end, 10);
    if (end == buf) return std::nullopt;
    return static_cast<std::int64_t>(v);
}

// Writes `text` to `path` atomically; throws Error(temporary) naming the cause.
void write_atomically(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd)
        throw Error(ErrorClass::temporary, "cannot write " + tmp + ": " + std::strerror(errno));
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorClass::temporary, "cannot write " + tmp + ": " + std::strerror(e));
    }
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorClass::temporary, "cannot rename " + tmp + ": " + std::strerror(e));
    }
}

}  // namespace

GraphThrottle::GraphThrottle(std::string state_dir, std::string account, Clock clock)
    : dir_(graph_dir(state_dir)),
      path_(dir_ + "/" + account + ".throttle"),
      clock_(clock ? std::move(clock) : Clock(system_now)) {}

std::optional<std::int64_t> GraphThrottle::blocked_until() const {
    auto until = read_time(path_);
    if (until && *until > clock_()) return until;
    return std::nullopt;
}

void GraphThrottle::hold_off(int seconds) {
    std::int64_t until = clock_() + std::max(seconds, 1);
    auto stored = read_time(path_);
    if (stored && *stored >= until) return;
    try {
        ensure_dir(dir_);
        write_atomically(path_, std::to_string(until) + "\n");
    } catch (const Error& e) {
        log_warning(std::string("graph throttle: ") + e.what());
    }
}

GraphSlot acquire_slot(const std::string& state_dir, const std::string& account,
                       std::optional<Deadline> deadline) {
    const std::string dir = graph_dir(state_dir);
    ensure_dir(dir);
    UniqueFd fds[kGraphSlots];
    for (int i = 0; i < kGraphSlots; ++i) {
        std::string path = dir + "/" + account + ".slot" + std::to_string(i);
        fds[i].reset(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!fds[i])
            throw Error(ErrorClass::temporary,
                        "cannot open " + path + ": " + std::string(std::strerror(errno)));
    }
    for (;;) {
        for (int i = 0; i < kGraphSlots; ++i)
            if (::flock(fds[i].get(), LOCK_EX | LOCK_NB) == 0)
                return GraphSlot(std::move(fds[i]), i);
        if (expired(deadline, std::chrono::milliseconds(20)))
            throw DeadlineError("a free Microsoft Graph request slot of account " + account +
                                " (4 requests at a time)");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace o365
