// health: the milter's link to the shared token cache: the background
// refresher that keeps every account's token fresh, and the health probe the
// policy asks at MAIL FROM.
//
// Contract:
// - AccountServices owns one TokenCache (<state_dir>/tokens, single-flight with
//   the transport and o365relayctl through the cache's file locks) fed by the
//   Entra client, and a Refresher calling TokenCache::get() for every account
//   of the current config every 30 s (get() refreshes only inside the account's
//   refresh_window and honours the cache's backoff), for the token audience the
//   account's method needs (refresher.hpp).
// - health_probe(): for an account whose cache entry (of the audience its
//   method needs: <account>+graph for method = graph) records a last_error of
//   class configuration (Entra refused the credentials) and holds no token
//   with more than 120 s left, returns the recorded message ("AADSTS...");
//   otherwise nullopt. A token that is still valid lets mail through, because
//   the transport can still deliver with it. Reads the entry with
//   TokenCache::peek() (never refreshes, never throws). The probe refers to
//   this AccountServices (its current config's [graph] settings): it must
//   outlive every Policy holding the probe (the daemon destroys its policies
//   first).
// - reload(config): the refresher uses the new accounts from its next round
//   (poked at once); a changed [relay] state_dir takes effect at restart (logged).
// - start()/stop(): the refresher thread; stop() joins it.
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>

#include "config.hpp"
#include "policy.hpp"
#include "refresher.hpp"
#include "token_cache.hpp"

namespace o365 {

class AccountServices {
  public:
    explicit AccountServices(std::shared_ptr<const Config> config,
                             std::shared_ptr<TokenSource> source = {});
    ~AccountServices();

    HealthProbe health_probe() const;
    void reload(std::shared_ptr<const Config> config);
    void start();
    void stop();

    // The decision of health_probe() from an entry (pure; unit-tested).
    static std::optional<std::string> unhealthy(const std::optional<CacheEntry>& entry,
                                                std::int64_t now);

  private:
    std::shared_ptr<const Config> config() const;

    mutable std::mutex mu_;
    std::shared_ptr<const Config> config_;
    std::shared_ptr<TokenCache> cache_;
    std::unique_ptr<Refresher> refresher_;
};

}  // namespace o365
