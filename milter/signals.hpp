// signals: SIGHUP reloads the config instead of stopping the milter.
//
// libmilter's own signal thread sigwait()s for SIGHUP, SIGTERM and SIGINT and
// treats SIGHUP like SIGTERM (stop). To keep the contract of docs/design.md section 6 (SIGHUP
// reloads), this unit defines sigwait() in the executable, which interposes
// libmilter's call: the set it waits for loses SIGHUP (SIGTERM and SIGINT still
// stop libmilter cleanly, as smfi_stop() would). SIGHUP is blocked in every
// thread (block_signals() before any thread starts) and only ReloadThread
// waits for it, with sigwaitinfo(), which is not interposed.
//
// Contract: block_signals() must be called in main before any thread exists.
// ReloadThread calls on_hup for each SIGHUP, in its own thread, one at a time;
// stop() wakes it and joins. Thread-safe for that use.
#pragma once

#include <pthread.h>

#include <atomic>
#include <functional>
#include <thread>

namespace o365 {

// Blocks SIGHUP, SIGTERM and SIGINT in the calling thread (inherited by the
// threads it creates later).
void block_signals();

class ReloadThread {
  public:
    explicit ReloadThread(std::function<void()> on_hup);
    ~ReloadThread();
    void stop();

  private:
    void run();
    std::function<void()> on_hup_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace o365
