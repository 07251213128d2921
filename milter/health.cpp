#include "health.hpp"

#include <chrono>

#include "log.hpp"
#include "oauth.hpp"
#include "token_audience.hpp"

namespace o365 {

namespace {

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

AccountServices::AccountServices(std::shared_ptr<const Config> config,
                                 std::shared_ptr<TokenSource> source)
    : config_(std::move(config)) {
    if (!source) source = std::make_shared<EntraClient>();
    cache_ = std::make_shared<TokenCache>(config_->relay.state_dir, std::move(source));
    refresher_ = std::make_unique<Refresher>([this] { return this->config(); },
                                             [c = cache_](const Account& a) { c->get(a); });
}

AccountServices::~AccountServices() {
    stop();
}

std::shared_ptr<const Config> AccountServices::config() const {
    std::lock_guard lock(mu_);
    return config_;
}

std::optional<std::string> AccountServices::unhealthy(const std::optional<CacheEntry>& e,
                                                      std::int64_t now) {
    if (!e || !e->last_error) return std::nullopt;
    if (e->last_error->error_class != ErrorClass::configuration) return std::nullopt;
    if (!e->access_token.empty() && e->expires_at > now + 120) return std::nullopt;
    return e->last_error->message.empty() ? std::string("credentials refused")
                                          : e->last_error->message;
}

HealthProbe AccountServices::health_probe() const {
    // The Graph scope is part of the entry's fingerprint; it comes from the
    // current config, which is the policy's own except for the moment of a
    // reload.
    return [this, c = cache_](const Account& a) -> std::optional<std::string> {
        const auto cfg = config();
        return unhealthy(c->peek(account_for_audience(a, cfg->graph, audience_of(a))),
                         now_seconds());
    };
}

void AccountServices::reload(std::shared_ptr<const Config> config) {
    {
        std::lock_guard lock(mu_);
        if (config->relay.state_dir != config_->relay.state_dir)
            log_warning("reload: [relay] state_dir takes effect at restart");
        config_ = std::move(config);
    }
    refresher_->poke();
}

void AccountServices::start() {
    refresher_->start();
}

void AccountServices::stop() {
    if (refresher_) refresher_->stop();
}

}  // namespace o365
