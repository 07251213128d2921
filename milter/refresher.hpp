// refresher: a background thread that keeps every configured account's token
// fresh, so that deliveries find a valid token in the shared cache and the
// milter's health check sees Entra's verdict early.
//
// Contract: every `interval` (and at once after start() and poke()) it calls
// refresh() for each account of the config that config() returns at that
// moment (so a SIGHUP reload is picked up), with the account as the token
// cache sees it for the audience its delivery method needs
// (token_audience.hpp: for method = graph the entry "<account>+graph" with the
// Graph scope; for method = smtp the account as configured), so the cache keeps
// exactly the tokens the configured methods use. In production refresh is
// TokenCache::get(), which refreshes only inside the account's refresh_window,
// single-flight across processes, and honours the cache's backoff, so calling
// it often is cheap. An exception from refresh is logged (warning, once per
// change of text, never a secret: the cache's messages are secret-free and the
// log redacts) and the round goes on with the next account. stop() wakes the
// thread and joins it; a refresh already running finishes first (bounded by
// [entra] http_timeout). The destructor stops.
// Thread-safe: start/stop/poke may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "config.hpp"

namespace o365 {

class Refresher {
  public:
    using ConfigFn = std::function<std::shared_ptr<const Config>()>;
    using RefreshFn = std::function<void(const Account&)>;

    Refresher(ConfigFn config, RefreshFn refresh,
              std::chrono::milliseconds interval = std::chrono::seconds(30));
    ~Refresher();
    Refresher(const Refresher&) = delete;
    Refresher& operator=(const Refresher&) = delete;

    void start();
    void stop();
    void poke();  // run a round now

    std::uint64_t rounds() const;  // completed rounds (tests)

  private:
    void run();
    void round();

    ConfigFn config_;
    RefreshFn refresh_;
    std::chrono::milliseconds interval_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    bool poked_ = false;
    std::uint64_t rounds_ = 0;
    std::map<std::string, std::string> last_error_;  // account -> last logged text
    std::thread thread_;
};

}  // namespace o365
