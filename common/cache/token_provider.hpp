// token_provider: where a delivery gets its access tokens. The transport and
// `o365relayctl check` use the shared TokenCache through CacheTokenProvider;
// unit tests substitute their own provider.
//
// Contract:
// - get(account, deadline): a token with more than 120 s left.
// - refresh(account, rejected, deadline): after the server refused `rejected`
//   (535 at AUTH): a different token (the cache may already hold one, else it
//   asks Entra ID).
// - reject(account, token, reason): the server refused `token` again after the
//   forced refresh: the cache drops it and records the failure with its
//   backoff, so that a persistent 535 does not cost one token request per
//   delivery attempt (docs/design.md section "Token cache").
// - deadline: the caller's overall deadline; no token call may outlast it
//   (nullopt: no deadline).
// Failure: get() and refresh() throw Error (temporary, or configuration when
// the credentials are refused) with a message fit for a log and a DSN; it
// never contains a token. reject() never throws.
// Thread-safety: CacheTokenProvider is as thread-safe as TokenCache (it is).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "config.hpp"
#include "deadline.hpp"
#include "log.hpp"
#include "token_cache.hpp"

namespace o365 {

// The overall deadline of a delivery or a check; nullopt for none.
using TokenDeadline = std::optional<Deadline>;

class TokenProvider {
  public:
    virtual ~TokenProvider() = default;
    virtual AccessToken get(const Account& account, TokenDeadline deadline) = 0;
    virtual AccessToken refresh(const Account& account, const std::string& rejected,
                                TokenDeadline deadline) = 0;
    virtual void reject(const Account& account, const std::string& token,
                        const std::string& reason) noexcept = 0;
};

// The shared token cache.
class CacheTokenProvider : public TokenProvider {
  public:
    explicit CacheTokenProvider(TokenCache& cache) : cache_(cache) {}
    AccessToken get(const Account& a, TokenDeadline deadline) override {
        return cache_.get(a, deadline);
    }
    AccessToken refresh(const Account& a, const std::string& rejected,
                        TokenDeadline deadline) override {
        return cache_.refresh(a, rejected, deadline);
    }
    void reject(const Account& a, const std::string& token,
                const std::string& reason) noexcept override {
        try {
            cache_.reject(a, token, reason);
        } catch (const std::exception& e) {
            log_warning(std::string("token cache: could not record the refused token: ") +
                        e.what());
        }
    }

  private:
    TokenCache& cache_;
};

}  // namespace o365
