// account_state: what `o365relayctl status`, `metrics` and `token status`
// know about one account: its delivery method, its token state (from the
// token cache, without refreshing) and its counters (common/cache/counters.hpp).
//
// Contract: gather() never asks Entra ID and never writes; a token cache entry
// or a counters file that cannot be read is reported in `token_error` /
// `counters_error` (the message names the file) instead of throwing. usable()
// is the one rule of "this account has a usable token": a cached token with
// more than 120 s left and no failed refresh recorded (`token status` and the
// metrics gauge o365relay_token_usable use it). Not thread-safe (read-only
// value objects; one gather() per account).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config.hpp"
#include "counters.hpp"
#include "token_cache.hpp"

namespace o365::ctl {

enum class TokenState {
    none,     // nothing cached (or the cache entry is unreadable)
    valid,    // more than 120 s left
    expired,  // 120 s or less left
};

struct AccountState {
    const Account* account = nullptr;
    std::string method;  // "smtp" or "graph"
    TokenState token = TokenState::none;
    std::int64_t token_seconds_left = 0;    // valid/expired: expires_at - now
    std::optional<LastError> last_error;    // the last failed refresh, if still recorded
    std::int64_t backoff_seconds_left = 0;  // > 0: no automatic token request before then
    bool refresh_token_missing = false;     // delegated account without a refresh token
    std::string token_error;                // the cache entry could not be read
    CounterSnapshot counters;               // zeros when counters_error is set
    std::string counters_error;             // the counters file could not be read

    // A cached token with more than 120 s left and no recorded failed refresh.
    bool usable() const;
    // "valid 52 min", "expired", "none", "backoff 40 s", "failed".
    std::string token_summary() const;
};

// "2026-12-01 22:40:01 UTC"; "never" for 0.
std::string utc_time(std::int64_t unix_seconds);

AccountState gather(const Account& a, const TokenCache& cache, const Counters& counters,
                    std::int64_t now);

}  // namespace o365::ctl
