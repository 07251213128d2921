#include "refresher.hpp"

#include <exception>

#include "log.hpp"
#include "token_audience.hpp"

namespace o365 {

Refresher::Refresher(ConfigFn config, RefreshFn refresh, std::chrono::milliseconds interval)
    : config_(std::move(config)), refresh_(std::move(refresh)), interval_(interval) {}

Refresher::~Refresher() {
    stop();
}

void Refresher::start() {
    std::lock_guard lock(mu_);
    if (thread_.joinable()) return;
    stop_ = false;
    poked_ = true;
    thread_ = std::thread([this] { run(); });
}

void Refresher::stop() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Refresher::poke() {
    {
        std::lock_guard lock(mu_);
        poked_ = true;
    }
    cv_.notify_all();
}

std::uint64_t Refresher::rounds() const {
    std::lock_guard lock(mu_);
    return rounds_;
}

void Refresher::run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
        cv_.wait_for(lock, interval_, [this] { return stop_ || poked_; });
        if (stop_) break;
        poked_ = false;
        lock.unlock();
        round();
        lock.lock();
        ++rounds_;
        cv_.notify_all();
    }
}

void Refresher::round() {
    std::shared_ptr<const Config> cfg;
    try {
        cfg = config_();
    } catch (const std::exception& e) {
        log_error(std::string("refresher: no config: ") + e.what());
        return;
    }
    if (!cfg) return;
    for (const Account& configured : cfg->accounts) {
        {
            std::lock_guard lock(mu_);
            if (stop_) return;
        }
        const Audience audience = audience_of(configured);
        const Account acc = account_for_audience(configured, cfg->graph, audience);
        std::string text;
        try {
            refresh_(acc);
        } catch (const std::exception& e) {
            text = e.what();
        } catch (...) {
            text = "unknown error";
        }
        std::lock_guard lock(mu_);
        std::string& last = last_error_[acc.name];
        if (text != last) {
            const std::string who = "refresher: account " + configured.name + " (" +
                                    std::string(audience_name(audience)) + " token): ";
            if (text.empty())
                log_info(who + "token refresh works again");
            else
                log_warning(who + text);
            last = text;
        }
    }
}

}  // namespace o365
