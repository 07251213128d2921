// token_cache: the refresh policy over token_cache_file (see token_cache.hpp
// for the contract).
#include "token_cache.hpp"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

#include "config_schema.hpp"
#include "counters.hpp"
#include "log.hpp"
#include "token_cache_file.hpp"

namespace o365 {

namespace {

constexpr std::int64_t kMinLeft = 120;     // never hand out a token with less left
constexpr std::int64_t kBackoffFirst = 5;  // seconds after the first failure
constexpr std::int64_t kBackoffMax = 300;  // cap of the doubling
constexpr int kRetryAfterMax = 3600;       // cap of a server's Retry-After

std::int64_t system_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Length-prefixed fields into one SHA-256, hex-encoded.
class Hasher {
  public:
    Hasher() : ctx_(EVP_MD_CTX_new()) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
            throw Error(ErrorClass::temporary, "token cache: SHA-256 unavailable");
    }
    ~Hasher() { EVP_MD_CTX_free(ctx_); }
    Hasher(const Hasher&) = delete;
    Hasher& operator=(const Hasher&) = delete;

    void add(std::string_view key, std::string_view value) {
        std::string rec = std::string(key) + "=" + std::to_string(value.size()) + ":";
        EVP_DigestUpdate(ctx_, rec.data(), rec.size());
        EVP_DigestUpdate(ctx_, value.data(), value.size());
        EVP_DigestUpdate(ctx_, "\n", 1);
    }
    void add_file(std::string_view key, const std::string& path) {
        add(key, path);
        if (path.empty()) return;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            add(std::string(key) + ".stat", "missing");
            return;
        }
        char buf[128];
        std::snprintf(buf, sizeof buf, "%lld.%09ld/%lld/%llu",
                      static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec,
                      static_cast<long long>(st.st_size),
                      static_cast<unsigned long long>(st.st_ino));
        add(std::string(key) + ".stat", buf);
    }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx_, md, &n);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (unsigned i = 0; i < n; ++i) {
            out += digits[md[i] >> 4];
            out += digits[md[i] & 15];
        }
        return out;
    }

  private:
    EVP_MD_CTX* ctx_;
};

std::int64_t effective_window(const Account& a) {
    return std::max<std::int64_t>(a.entra.refresh_window, kMinLeft);
}

void check_account_name(const std::string& name) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        throw Error(ErrorClass::configuration, "token cache: invalid account name '" + name + "'");
}

std::string backoff_message(const Account& a, const CacheEntry& e, std::int64_t now) {
    const LastError& l = *e.last_error;
    return "token refresh for account " + a.name + " failed (" +
           std::string(to_string(l.error_class)) + ", " + std::to_string(e.failures) +
           (e.failures == 1 ? " time" : " times") + "): " + l.message + "; next attempt in " +
           std::to_string(std::max<std::int64_t>(e.backoff_until - now, 0)) + " s";
}

std::string write_backoff_message(const Account& a, const WriteBackoff& b, std::int64_t now) {
    return "token cache: the entry of account " + a.name +
           " could not be written (disk full, read-only or I/O error: see the log); next token "
           "request in " +
           std::to_string(std::max<std::int64_t>(b.until - now, 0)) + " s";
}

// The doubling backoff after `failures` consecutive failures.
std::int64_t backoff_for(int failures) {
    if (failures > 7) return kBackoffMax;
    return std::min(kBackoffFirst << (std::max(failures, 1) - 1), kBackoffMax);
}

enum class Mode { get, rejected, force };

// A failed token request, as recorded.
struct Failure {
    ErrorClass error_class = ErrorClass::temporary;
    std::string message;  // redacted
    int retry_after = 0;
};

// What a locked refresh knows after reading the entry under the lock.
struct Attempt {
    const Account& account;
    Mode mode;
    std::string rejected;
    std::optional<Deadline> deadline;
    std::string fingerprint;
    std::optional<CacheEntry> cur;
    AccessToken current;  // empty value: none
    std::int64_t now = 0;

    std::int64_t left() const { return current.value.empty() ? 0 : current.expires_at - now; }
    // get() may still use the current token if a refresh cannot be made.
    bool can_fall_back() const { return mode == Mode::get && left() > kMinLeft; }
};

}  // namespace

struct TokenCache::Impl {
    std::string state_dir;
    std::string dir;
    std::shared_ptr<TokenSource> source;
    Clock clock;
    std::mutex map_mu;
    std::map<std::string, std::shared_ptr<std::timed_mutex>, std::less<>> account_mu;

    std::int64_t now() const { return clock ? clock() : system_now(); }
    std::string path(const std::string& name) const { return dir + "/" + name + ".json"; }
    std::string lock_path(const std::string& name) const { return dir + "/" + name + ".lock"; }

    std::shared_ptr<std::timed_mutex> mutex_for(const std::string& name) {
        std::lock_guard lk(map_mu);
        auto& m = account_mu[name];
        if (!m) m = std::make_shared<std::timed_mutex>();
        return m;
    }

    // Reads the entry and applies the trust rules; nullopt: treat as missing.
    // With a changed fingerprint, the returned entry holds no access token, no
    // error and no backoff, and keeps a delegated refresh token only when its
    // binding still matches. Throws for refused files (symlink, other owner)
    // and a refused directory (loose, other owner).
    std::optional<CacheEntry> load(const Account& a, const std::string& fp, bool quiet) const {
        const std::string p = path(a.name);
        CacheFileRead r;
        try {
            if (!check_cache_dir(dir)) return std::nullopt;
            r = read_cache_file(p, a.name);
        } catch (const Error& e) {
            if (!quiet) log_warning(e.what());  // refused: symlink, other owner, I/O
            throw;
        }
        switch (r.status) {
            case CacheFileStatus::missing:
                return std::nullopt;
            case CacheFileStatus::loose:
                if (!quiet)
                    log_warning("token cache: " + p + ": " + r.reason +
                                ": not trusted, it will be replaced by a fresh 0600 entry");
                return std::nullopt;
            case CacheFileStatus::corrupt:
                if (!quiet)
                    log_warning("token cache: " + p + " is corrupt (" + r.reason +
                                "): treated as missing, it will be replaced");
                return std::nullopt;
            case CacheFileStatus::ok:
                break;
        }
        CacheEntry& e = r.entry;
        if (!e.access_token.empty()) add_secret(e.access_token);
        if (!e.refresh_token.empty()) add_secret(e.refresh_token);
        if (e.credential_fingerprint == fp) return std::move(e);
        if (!quiet)
            log_info("token cache: credential settings of account " + a.name +
                     " changed: cached token discarded");
        CacheEntry fresh;
        fresh.account = a.name;
        if (a.flow == Flow::delegated && !e.refresh_token.empty()) {
            if (e.refresh_binding == refresh_binding(a)) {
                fresh.refresh_token = e.refresh_token;
                fresh.refresh_binding = e.refresh_binding;
            } else if (!quiet) {
                log_warning("token cache: the refresh token of account " + a.name +
                            " was issued for another authority, tenant or client_id: dropped");
            }
        }
        return fresh;
    }

    static bool has_token(const std::optional<CacheEntry>& e) {
        return e && !e->access_token.empty();
    }

    std::chrono::milliseconds lock_timeout(const Account& a) const {
        return std::chrono::seconds(2 * std::max(a.entra.http_timeout, 1) + 10);
    }

    // The locks of one account: the thread mutex, then the lock file.
    struct Locks {
        std::unique_lock<std::timed_mutex> thread;
        std::unique_ptr<FileLock> file;
    };
    Locks lock(const Account& a, std::optional<Deadline> deadline);

    // A recorded backoff (failure or unwritable entry) in effect: the current
    // token when it may be used, else throws the recorded reason; nullopt: none.
    std::optional<AccessToken> check_backoff(const Attempt& at,
                                             const std::optional<WriteBackoff>& marker) const;

    // Writes `e`; on failure keeps `backoff` seconds in the lock file's marker
    // and logs the cause once (see the contract). False when not written.
    bool persist(const Account& a, const CacheEntry& e, FileLock& lock, std::int64_t backoff);

    // The steps of locked_refresh().
    Attempt read_state(const Account& a, Mode mode, const std::string& rejected,
                       std::optional<Deadline> deadline) const;
    std::optional<AccessToken> still_valid(const Attempt& at) const;
    std::optional<AccessToken> in_backoff(const Attempt& at, const FileLock& lock) const;
    CacheEntry next_entry(const Attempt& at) const;
    TokenGrant request_grant(const Attempt& at, const CacheEntry& next, Failure& failure);
    void record_failure(Attempt& at, CacheEntry next, const Failure& f, FileLock& lock);
    AccessToken fall_back_or_throw(const Attempt& at, const Failure& f) const;
    AccessToken store_grant(Attempt& at, CacheEntry next, const TokenGrant& g, FileLock& lock);

    AccessToken locked_refresh(const Account& a, Mode mode, const std::string& rejected,
                               std::optional<Deadline> deadline,
                               const std::optional<AccessToken>& fallback);
    void locked_store(const Account& a, const TokenGrant& g);
    void locked_reject(const Account& a, const std::string& rejected, const std::string& reason);
};

TokenCache::Impl::Locks TokenCache::Impl::lock(const Account& a, std::optional<Deadline> deadline) {
    ensure_cache_dir(state_dir, dir);
    const std::string what = "the token lock of account " + a.name;
    const auto timeout = lock_timeout(a);
    Locks l;
    l.thread = std::unique_lock(*mutex_for(a.name), std::defer_lock);
    if (!l.thread.try_lock_for(bounded(timeout, deadline))) {
        if (expired(deadline)) throw DeadlineError(what);
        throw Error(ErrorClass::temporary, "token cache: timed out waiting for " + what +
                                               " (another thread is refreshing)");
    }
    l.file = std::make_unique<FileLock>(lock_path(a.name), timeout, deadline, what);
    return l;
}

std::optional<AccessToken> TokenCache::Impl::check_backoff(
    const Attempt& at, const std::optional<WriteBackoff>& marker) const {
    if (at.mode == Mode::force) return std::nullopt;
    const CacheEntry* e = at.cur ? &*at.cur : nullptr;
    const bool failed = e && e->last_error && at.now < e->backoff_until;
    const bool unwritable = marker && at.now < marker->until;
    if (!failed && !unwritable) return std::nullopt;
    if (at.can_fall_back()) return at.current;
    if (failed) throw Error(e->last_error->error_class, backoff_message(at.account, *e, at.now));
    throw Error(ErrorClass::temporary, write_backoff_message(at.account, *marker, at.now));
}

bool TokenCache::Impl::persist(const Account& a, const CacheEntry& e, FileLock& lock,
                               std::int64_t backoff) {
    const std::optional<WriteBackoff> before = lock.write_backoff();
    try {
        write_cache_file(dir, a.name, e);
        if (before) lock.clear_write_backoff(now());
        return true;
    } catch (const Error& err) {
        const std::int64_t t = now();
        const bool marked = lock.set_write_backoff(WriteBackoff{t, t + backoff});
        const std::string what = std::string(err.what()) + "; no new token request for account " +
                                 a.name + " for " + std::to_string(backoff) + " s";
        if (!before || !marked)
            log_error(what + (marked ? "" : " (the backoff could not be recorded either)"));
        else
            log_debug(what);
        return false;
    }
}

Attempt TokenCache::Impl::read_state(const Account& a, Mode mode, const std::string& rejected,
                                     std::optional<Deadline> deadline) const {
    Attempt at{a, mode, rejected, deadline, fingerprint(a), std::nullopt, {}, 0};
    at.cur = load(a, at.fingerprint, false);  // read again, under the lock
    at.now = now();
    if (has_token(at.cur)) at.current = AccessToken{at.cur->access_token, at.cur->expires_at};
    return at;
}

// Someone else may have refreshed while we waited for the lock.
std::optional<AccessToken> TokenCache::Impl::still_valid(const Attempt& at) const {
    if (at.current.value.empty()) return std::nullopt;
    if (at.mode == Mode::get && at.left() > effective_window(at.account)) return at.current;
    if (at.mode == Mode::rejected && at.current.value != at.rejected && at.left() > kMinLeft)
        return at.current;
    return std::nullopt;
}

std::optional<AccessToken> TokenCache::Impl::in_backoff(const Attempt& at,
                                                        const FileLock& lock) const {
    return check_backoff(at, lock.write_backoff());
}

CacheEntry TokenCache::Impl::next_entry(const Attempt& at) const {
    const Account& a = at.account;
    CacheEntry next = at.cur ? *at.cur : CacheEntry{};
    next.version = 1;
    next.account = a.name;
    next.credential_fingerprint = at.fingerprint;
    if (a.flow == Flow::delegated && next.refresh_token.empty())
        throw Error(ErrorClass::configuration, "no refresh token for account " + a.name +
                                                   ": run `o365relayctl login " + a.name + "`");
    if (!source)
        throw Error(ErrorClass::configuration,
                    "token cache: no token source to refresh account " + a.name);
    return next;
}

// One request; a failure is returned in `failure` (empty message: success).
// Throws DeadlineError when the deadline ended it (not a failure of Entra).
TokenGrant TokenCache::Impl::request_grant(const Attempt& at, const CacheEntry& next,
                                           Failure& failure) {
    const Account& a = at.account;
    const std::string what = "the token request of account " + a.name;
    const std::string rt = a.flow == Flow::delegated ? next.refresh_token : std::string();
    if (expired(at.deadline, std::chrono::milliseconds(50))) throw DeadlineError(what);
    Counters(state_dir).record_token_request(a.name);  // `o365relayctl status`
    TokenGrant grant;
    try {
        grant = at.deadline ? source->acquire_until(a, rt, *at.deadline) : source->acquire(a, rt);
        if (grant.access_token.empty() || grant.expires_in <= 0)
            failure.message = "the token endpoint returned no usable access token";
    } catch (const OAuthError& e) {
        failure = Failure{e.error_class(), e.what(), e.retry_after()};
    } catch (const Error& e) {
        failure = Failure{e.error_class(), e.what(), 0};
    } catch (const std::exception& e) {
        failure = Failure{ErrorClass::temporary, e.what(), 0};
    }
    if (!failure.message.empty() && expired(at.deadline)) {
        log_info("token cache: " + what +
                 " was cut short by the deadline: " + redact(failure.message));
        throw DeadlineError(what);
    }
    failure.message = redact(failure.message);
    if (!failure.message.empty()) Counters(state_dir).record_token_failure(a.name);
    return grant;
}

void TokenCache::Impl::record_failure(Attempt& at, CacheEntry next, const Failure& f,
                                      FileLock& lock) {
    const Account& a = at.account;
    at.now = now();  // the request took time: the fallback must still be good
    next.failures = std::min(next.failures + 1, 1000);
    // A longer Retry-After (429) extends the backoff, up to an hour.
    const std::int64_t backoff =
        std::max<std::int64_t>(backoff_for(next.failures), std::min(f.retry_after, kRetryAfterMax));
    next.backoff_until = at.now + backoff;
    next.last_error = LastError{at.now, f.error_class, f.message};
    log_warning("token refresh for account " + a.name + " failed (" +
                std::string(to_string(f.error_class)) + "): " + f.message +
                "; no new attempt for " + std::to_string(backoff) + " s");
    persist(a, next, lock, backoff);
}

AccessToken TokenCache::Impl::fall_back_or_throw(const Attempt& at, const Failure& f) const {
    const Account& a = at.account;
    if (at.can_fall_back()) {
        log_info("token cache: account " + a.name + ": using the current token (" +
                 std::to_string(at.left()) + " s left)");
        return at.current;
    }
    throw Error(f.error_class, "token refresh for account " + a.name + " failed: " + f.message);
}

AccessToken TokenCache::Impl::store_grant(Attempt& at, CacheEntry next, const TokenGrant& grant,
                                          FileLock& lock) {
    const Account& a = at.account;
    at.now = now();
    add_secret(grant.access_token);
    if (!grant.refresh_token.empty()) add_secret(grant.refresh_token);
    next.access_token = grant.access_token;
    next.obtained_at = at.now;
    next.expires_at = at.now + grant.expires_in;
    if (a.flow == Flow::delegated) {
        if (!grant.refresh_token.empty()) next.refresh_token = grant.refresh_token;
        next.refresh_binding = refresh_binding(a);
    } else {
        next.refresh_token.clear();
        next.refresh_binding.clear();
    }
    next.last_error.reset();
    next.failures = 0;
    next.backoff_until = 0;
    // Unwritten, the next delivery would ask again: back off, doubling while it lasts.
    const std::optional<WriteBackoff> marker = lock.write_backoff();
    const std::int64_t backoff = marker
                                     ? std::clamp<std::int64_t>(2 * (marker->until - marker->since),
                                                                kBackoffFirst, kBackoffMax)
                                     : kBackoffFirst;
    if (!persist(a, next, lock, backoff) && a.flow == Flow::delegated &&
        !grant.refresh_token.empty()) {
        // The token is good: the delivery may go on. A rotated refresh token
        // is lost with this write, so say so loudly.
        log_error("token cache: the rotated refresh token of account " + a.name +
                  " is lost; `o365relayctl login " + a.name + "` may be needed");
    }
    log_info("token cache: new token for account " + a.name + " (expires in " +
             std::to_string(grant.expires_in) + " s)");
    if (grant.expires_in <= kMinLeft)
        throw Error(ErrorClass::temporary, "token refresh for account " + a.name +
                                               ": the token endpoint issued a token that expires "
                                               "in " +
                                               std::to_string(grant.expires_in) + " s (at least " +
                                               std::to_string(kMinLeft + 1) + " s needed)");
    return AccessToken{next.access_token, next.expires_at};
}

// The single-flight refresh (see the contract in token_cache.hpp).
AccessToken TokenCache::Impl::locked_refresh(const Account& a, Mode mode,
                                             const std::string& rejected,
                                             std::optional<Deadline> deadline,
                                             const std::optional<AccessToken>& fallback) {
    try {
        // 1. Take the account's locks, bounded by the deadline.
        Locks locks = lock(a, deadline);
        // 2. Read the entry again, under the lock.
        Attempt at = read_state(a, mode, rejected, deadline);
        // 3. Still valid? Someone else may have refreshed meanwhile.
        if (auto t = still_valid(at)) return *t;
        // 4. In backoff (recorded failure or unwritable entry)? No request.
        if (auto t = in_backoff(at, *locks.file)) return *t;
        // 5. Ask the token source, within the deadline.
        CacheEntry next = next_entry(at);
        Failure failure;
        TokenGrant grant = request_grant(at, next, failure);
        // 6. A failure is recorded with its backoff, then the current token or the error.
        if (!failure.message.empty()) {
            record_failure(at, std::move(next), failure, *locks.file);
            return fall_back_or_throw(at, failure);
        }
        // 7. A grant is stored.
        return store_grant(at, std::move(next), grant, *locks.file);
    } catch (const DeadlineError& e) {
        // get() may still send the current token, as when a refresh fails.
        if (mode == Mode::get && fallback && fallback->expires_at - now() > kMinLeft) {
            log_info(std::string("token cache: ") + e.what() + ": using the current token of " +
                     "account " + a.name);
            return *fallback;
        }
        throw;
    }
}

void TokenCache::Impl::locked_store(const Account& a, const TokenGrant& g) {
    if (g.access_token.empty() || g.expires_in <= 0)
        throw Error(ErrorClass::temporary, "token cache: refusing to store a grant for account " +
                                               a.name + " without an access token");
    Locks locks = lock(a, std::nullopt);
    const std::string fp = fingerprint(a);
    std::optional<CacheEntry> cur = load(a, fp, false);  // refuses foreign files
    add_secret(g.access_token);
    if (!g.refresh_token.empty()) add_secret(g.refresh_token);
    CacheEntry e;
    e.account = a.name;
    e.access_token = g.access_token;
    e.obtained_at = now();
    e.expires_at = e.obtained_at + g.expires_in;
    e.credential_fingerprint = fp;
    if (a.flow == Flow::delegated) {
        e.refresh_token = !g.refresh_token.empty() ? g.refresh_token
                          : cur                    ? cur->refresh_token
                                                   : std::string();
        e.refresh_binding = refresh_binding(a);
    }
    write_cache_file(dir, a.name, e);
    locks.file->clear_write_backoff(now());
    log_info("token cache: stored a new token for account " + a.name + " (expires in " +
             std::to_string(g.expires_in) + " s)");
}

void TokenCache::Impl::locked_reject(const Account& a, const std::string& rejected,
                                     const std::string& reason) {
    // 1. Take the locks; 2. read the entry again.
    Locks locks = lock(a, std::nullopt);
    Attempt at = read_state(a, Mode::rejected, rejected, std::nullopt);
    // 3. Another process already replaced the refused token: nothing to record.
    if (at.current.value.empty() || at.current.value != rejected) {
        log_info("token cache: account " + a.name +
                 ": the refused token was already replaced; nothing recorded");
        return;
    }
    // 4. Drop it and record the refusal like a failed refresh.
    CacheEntry next = *at.cur;
    next.access_token.clear();
    next.expires_at = 0;
    Failure f{ErrorClass::temporary,
              redact("the server refused the token after a refresh: " + reason), 0};
    record_failure(at, std::move(next), f, *locks.file);
}

TokenCache::TokenCache(std::string state_dir, std::shared_ptr<TokenSource> source, Clock clock)
    : impl_(std::make_unique<Impl>()) {
    while (state_dir.size() > 1 && state_dir.back() == '/')
        state_dir.pop_back();
    impl_->state_dir = state_dir;
    impl_->dir = state_dir + "/tokens";
    impl_->source = std::move(source);
    impl_->clock = std::move(clock);
}

TokenCache::~TokenCache() = default;

std::string TokenCache::entry_path(const std::string& account_name) const {
    return impl_->path(account_name);
}

AccessToken TokenCache::get(const Account& a, std::optional<Deadline> deadline) {
    check_account_name(a.name);
    // 1. Warm path: no lock, no request. Open, read, parse, validate. Quiet
    //    about a corrupt/loose/stale entry: the locked path reads it again and logs.
    Attempt at{a, Mode::get, {}, deadline, fingerprint(a), std::nullopt, {}, 0};
    at.cur = impl_->load(a, at.fingerprint, true);
    at.now = impl_->now();
    if (Impl::has_token(at.cur)) at.current = AccessToken{at.cur->access_token, at.cur->expires_at};
    if (!at.current.value.empty() && at.left() > effective_window(a)) return at.current;
    // 2. In backoff: no lock either; the current token if it still may be sent.
    if (auto t = impl_->check_backoff(at, read_write_backoff(impl_->lock_path(a.name)))) return *t;
    // 3. Refresh under the lock.
    std::optional<AccessToken> fallback;
    if (at.can_fall_back()) fallback = at.current;
    return impl_->locked_refresh(a, Mode::get, {}, deadline, fallback);
}

AccessToken TokenCache::refresh(const Account& a, const std::string& rejected,
                                std::optional<Deadline> deadline) {
    check_account_name(a.name);
    return impl_->locked_refresh(a, Mode::rejected, rejected, deadline, std::nullopt);
}

void TokenCache::reject(const Account& a, const std::string& rejected_token,
                        const std::string& reason) {
    check_account_name(a.name);
    impl_->locked_reject(a, rejected_token, reason);
}

AccessToken TokenCache::force_refresh(const Account& a) {
    check_account_name(a.name);
    return impl_->locked_refresh(a, Mode::force, {}, std::nullopt, std::nullopt);
}

std::optional<CacheEntry> TokenCache::peek(const Account& a) const {
    try {
        check_account_name(a.name);
        std::optional<CacheEntry> e = impl_->load(a, fingerprint(a), true);
        // Fingerprint changed: no token left; a delegated refresh token may be.
        if (e && e->credential_fingerprint.empty() && e->refresh_token.empty()) return std::nullopt;
        return e;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void TokenCache::store(const Account& a, const TokenGrant& grant) {
    check_account_name(a.name);
    impl_->locked_store(a, grant);
}

std::string TokenCache::fingerprint(const Account& a) {
    // The credential settings are the ones the config schema marks as such
    // (common/config/config_schema.hpp), so a new credential key cannot be forgotten here.
    Hasher h;
    h.add("v", "2");
    for (const CredentialSetting& c : credential_settings(a)) {
        if (c.is_file)
            h.add_file(c.key, c.value);
        else
            h.add(c.key, c.value);
    }
    return h.hex();
}

std::string TokenCache::refresh_binding(const Account& a) {
    Hasher h;
    h.add("v", "1");
    h.add("authority", a.entra.authority);
    h.add("tenant", a.entra.tenant);
    h.add("client_id", a.entra.client_id);
    return h.hex();
}

}  // namespace o365
