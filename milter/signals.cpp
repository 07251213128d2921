#include "signals.hpp"

#include <signal.h>

#include <cerrno>

#include "log.hpp"

// Interposes libc's sigwait() for the whole process (see signals.hpp): never
// hand SIGHUP to libmilter's signal thread.
extern "C" int sigwait(const sigset_t* set, int* sig) {
    sigset_t s = *set;
    sigdelset(&s, SIGHUP);
    for (;;) {
        int r = sigwaitinfo(&s, nullptr);
        if (r > 0) {
            *sig = r;
            return 0;
        }
        if (errno != EINTR) return errno;
    }
}

namespace o365 {

void block_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

ReloadThread::ReloadThread(std::function<void()> on_hup) : on_hup_(std::move(on_hup)) {
    thread_ = std::thread([this] { run(); });
}

ReloadThread::~ReloadThread() {
    stop();
}

void ReloadThread::stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    pthread_kill(thread_.native_handle(), SIGHUP);
    thread_.join();
}

void ReloadThread::run() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    while (!stop_) {
        int r = sigwaitinfo(&set, nullptr);
        if (r < 0) continue;  // EINTR
        if (stop_) break;
        try {
            on_hup_();
        } catch (...) {
            log_error("reload failed with an unexpected exception");
        }
    }
}

}  // namespace o365
