// token_cache: the shared per-account token files of docs/design.md section Token cache, used
// by the transport, the milter's refresher and o365relayctl at once.
//
// Contract:
// - Files: <state_dir>/tokens/<account>.json (0600), directory 0700, lock file
//   <account>.lock. Readers refuse symlinks and files owned by another user
//   (Error temporary naming the file); a loose mode on our own file, a corrupt
//   or truncated entry, or a changed credential fingerprint: treated as missing,
//   logged, replaced.
// - get(): returns a token with more than 120 s left. Inside refresh_window it
//   refreshes, single-flight across processes (flock on the lock file, re-read,
//   refresh only if still due, atomic write: temp file + fsync + rename + fsync
//   of the directory). If that refresh fails but the current token still has
//   more than 120 s, the current token is returned. A failed refresh is
//   recorded in last_error with backoff doubling from 5 s to 300 s; during the
//   backoff, a get() that needs a new token throws at once with the recorded
//   reason (same class) without asking Entra.
// - refresh(rejected): after the server refused `rejected` (535): if the cache
//   already holds a different, valid token, returns it; else forces a request.
// - reject(rejected, reason): the server refused `rejected` again after the
//   forced refresh (a persistent 535). When the stored token is still that one,
//   it is dropped and the refusal recorded like a failed refresh (last_error
//   temporary with `reason`, failures + 1, the doubling backoff): during the
//   backoff get() throws the recorded reason at once, without a token request.
// - Deadline: get() and refresh() take an optional deadline (deadline.hpp)
//   that bounds everything they wait for: the thread mutex and the lock file
//   (min(2 x http_timeout + 10 s, time left)) and the token request (its HTTP
//   timeouts, through TokenSource::acquire_until). When it is reached they
//   throw DeadlineError (temporary) naming what was waited for, or return the
//   current token when get() may still use it (more than 120 s left). A
//   request cut short by the deadline is not recorded as a failure (the next
//   delivery may have more time). Worst case: about the deadline + 1 s.
// - The tokens/ directory is checked on every path (check_cache_dir()): one
//   that is not ours or that group or other may access is refused (temporary,
//   naming the directory and `chmod 700 DIR`).
// - An entry that cannot be written (disk full, read-only, I/O error): the
//   backoff that would have been recorded (or, after a successful request, a
//   backoff doubling from 5 s to 300 s) is kept in the lock file's timestamps
//   (token_cache_file.hpp, "write backoff marker"); get() honours it like a
//   recorded failure, so a full disk costs one token request per backoff, not
//   one per delivery. The cause is logged as an error once, when the marker is
//   newly set; while it stays set, later failures are logged at debug level.
//   A successful write clears it. When not even the marker can be set (a
//   read-only file system), the error is logged on every attempt.
// - Delegated accounts: the refresh token is read and rotated under the lock;
//   a rotated refresh token is never lost to a concurrent writer.
// - Cost of a warm lookup does not depend on the number of accounts.
// - A changed credential fingerprint discards the cached access token, the
//   last error and the backoff (the administrator changed something: try at
//   once). A delegated account keeps its refresh token only when authority,
//   tenant and client_id are unchanged ("refresh_binding"): a refresh token
//   issued to another client or tenant is useless and is dropped (then:
//   "no refresh token ... run `o365relayctl login`").
// - Extra JSON fields beyond docs/design.md section Token cache (readers ignore unknown fields):
//   "failures" (consecutive failed refreshes), "backoff_until" (unix time;
//   the doubling backoff, or a longer 429 Retry-After), "refresh_binding".
// Thread-safe: one TokenCache may be used from many threads (the lock file is
// per process and per account; threads of one process are serialised by a
// mutex per account). The TokenSource may be called concurrently for
// different accounts, never for the same account.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config.hpp"
#include "deadline.hpp"
#include "token.hpp"

namespace o365 {

struct LastError {
    std::int64_t at = 0;
    ErrorClass error_class = ErrorClass::temporary;
    std::string message;  // never contains a secret
};

// The decoded cache file.
struct CacheEntry {
    int version = 1;
    std::string account;
    std::string access_token;
    std::int64_t expires_at = 0;
    std::int64_t obtained_at = 0;
    std::string refresh_token;  // delegated only
    std::string credential_fingerprint;
    std::optional<LastError> last_error;
    int failures = 0;                // consecutive failed refreshes (drives the backoff)
    std::int64_t backoff_until = 0;  // no automatic request before this unix time
    std::string refresh_binding;     // hash of authority, tenant, client_id (delegated)
};

struct AccessToken {
    std::string value;
    std::int64_t expires_at = 0;
};

class TokenCache {
  public:
    // Unix time in seconds. Production uses the system clock; tests inject one.
    using Clock = std::function<std::int64_t()>;

    TokenCache(std::string state_dir, std::shared_ptr<TokenSource> source, Clock clock = {});
    ~TokenCache();

    // Throws Error (temporary: Entra unreachable, backoff, cache file refused;
    // configuration: credentials refused by Entra, no refresh token for a
    // delegated account) with a message fit for a log and a DSN.
    // DeadlineError (temporary) when `deadline` is reached first.
    AccessToken get(const Account& account, std::optional<Deadline> deadline = std::nullopt);

    // After the server refused `rejected`. Same errors as get().
    AccessToken refresh(const Account& account, const std::string& rejected,
                        std::optional<Deadline> deadline = std::nullopt);

    // The server refused `rejected_token` again (see the contract above);
    // `reason` (the server's reply, no secret) becomes the recorded error.
    // Throws Error(temporary) when the cache cannot be locked or read.
    void reject(const Account& account, const std::string& rejected_token,
                const std::string& reason);

    // An administrator's refresh: ignores the backoff, always asks Entra.
    AccessToken force_refresh(const Account& account);

    // The entry as stored, without refreshing (status, milter health).
    // nullopt when there is no usable entry. Never throws for a missing/corrupt file.
    // After a change of the credential settings the access token is gone; a
    // delegated account's entry still shows its refresh token when it is bound
    // to the same authority, tenant and client_id.
    std::optional<CacheEntry> peek(const Account& account) const;

    // Stores a grant obtained elsewhere (device-code login) under the lock.
    void store(const Account& account, const TokenGrant& grant);

    // The fingerprint of the account's credential settings (tenant, client id,
    // credential file paths and their modification times, scope, flow, authority).
    static std::string fingerprint(const Account& account);

    // The hash a refresh token is bound to: authority, tenant, client_id.
    static std::string refresh_binding(const Account& account);

    // The path of the account's entry: <state_dir>/tokens/<account>.json.
    std::string entry_path(const std::string& account_name) const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace o365
