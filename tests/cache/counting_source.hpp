// counting_source: a TokenSource for the multi-process cache tests that needs
// no HTTP. All state lives in a directory shared by the processes under test:
//   count     number of token requests made so far (incremented under flock)
//   refresh   the one refresh token it currently accepts (delegated accounts)
//   requests  one line per request: "<n> <pid> <ok|refused>"
//   lock      the flock that serialises the bookkeeping (not the cache's lock)
// Each request sleeps `sleep_ms` after counting, outside its own lock, so that
// concurrent requests overlap if the cache fails to single-flight them.
// Refresh tokens rotate on every request; a refresh token that is not the
// latest issued one is refused with invalid_grant (configuration), as a
// strict Entra would, so a lost rotation is detected.
// Thread-safe across processes (flock); one instance per thread.
#pragma once

#include <string>

#include "token.hpp"

namespace o365::test {

class CountingSource : public TokenSource {
  public:
    CountingSource(std::string dir, int sleep_ms, std::int64_t expires_in)
        : dir_(std::move(dir)), sleep_ms_(sleep_ms), expires_in_(expires_in) {}
    TokenGrant acquire(const Account& account, const std::string& refresh_token) override;

  private:
    std::string dir_;
    int sleep_ms_;
    std::int64_t expires_in_;
};

}  // namespace o365::test
