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

#include "log.hpp"
#include "token_cache_file.hpp"

namespace o365 {

namespace {

constexpr std::int64_t kMinLeft = 120;     // never hand out a token with less left
constexpr std::int64_t kBackoffFirst = 5;  // seconds after the first failure
constexpr std::int64_t kBackoffMax = 300;  // cap of the doubling

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

std::string flow_name(Flow f) {
    return f == Flow::delegated ? "delegated" : "client_credentials";
}

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

enum class Mode { get, rejected, force };

}  // namespace

struct TokenCache::Impl {
    std::string state_dir;
    std::string dir;
    std::shared_ptr<TokenSource> source;
    Clock clock;
    std::mutex map_mu;
    std::map<std::string, std::shared_ptr<std::mutex>, std::less<>> account_mu;

    std::int64_t now() const { return clock ? clock() : system_now(); }
    std::string path(const std::string& name) const { return dir + "/" + name + ".json"; }

    std::shared_ptr<std::mutex> mutex_for(const std::string& name) {
        std::lock_guard lk(map_mu);
        auto& m = account_mu[name];
        if (!m) m = std::make_shared<std::mutex>();
        return m;
    }

    // Reads the entry and applies the trust rules; nullopt: treat as missing.
    // With a changed fingerprint, the returned entry holds no access token, no
    // error and no backoff, and keeps a delegated refresh token only when its
    // binding still matches. Throws for refused files (symlink, other owner).
    std::optional<CacheEntry> load(const Account& a, const std::string& fp, bool quiet) const {
        const std::string p = path(a.name);
        CacheFileRead r = read_cache_file(p, a.name);
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

    void write(const Account& a, const CacheEntry& e) const { write_cache_file(dir, a.name, e); }

    std::chrono::milliseconds lock_timeout(const Account& a) const {
        return std::chrono::seconds(2 * std::max(a.entra.http_timeout, 1) + 10);
    }

    AccessToken locked_refresh(const Account& a, Mode mode, const std::string& rejected);
    void locked_store(const Account& a, const TokenGrant& g);
};

AccessToken TokenCache::Impl::locked_refresh(const Account& a, Mode mode,
                                             const std::string& rejected) {
    ensure_cache_dir(state_dir, dir);
    auto mu = mutex_for(a.name);
    std::lock_guard thread_lock(*mu);
    FileLock file_lock(dir + "/" + a.name + ".lock", lock_timeout(a));

    const std::string fp = fingerprint(a);
    std::optional<CacheEntry> cur = load(a, fp, false);  // read again, under the lock
    std::int64_t now = this->now();
    const std::int64_t left = has_token(cur) ? cur->expires_at - now : 0;
    const AccessToken current{has_token(cur) ? cur->access_token : "",
                              has_token(cur) ? cur->expires_at : 0};

    // Still due? Someone else may have refreshed while we waited for the lock.
    if (mode == Mode::get && has_token(cur) && left > effective_window(a)) return current;
    if (mode == Mode::rejected && has_token(cur) && cur->access_token != rejected &&
        left > kMinLeft)
        return current;
    const bool can_fall_back = mode == Mode::get && has_token(cur) && left > kMinLeft;

    if (mode != Mode::force && cur && cur->last_error && now < cur->backoff_until) {
        if (can_fall_back) return current;
        throw Error(cur->last_error->error_class, backoff_message(a, *cur, now));
    }

    CacheEntry next = cur ? *cur : CacheEntry{};
    next.version = 1;
    next.account = a.name;
    next.credential_fingerprint = fp;
    if (a.flow == Flow::delegated && next.refresh_token.empty())
        throw Error(ErrorClass::configuration, "no refresh token for account " + a.name +
                                                   ": run `o365relayctl login " + a.name + "`");
    const std::string rt = a.flow == Flow::delegated ? next.refresh_token : std::string();

    TokenGrant grant;
    ErrorClass fail_class = ErrorClass::temporary;
    std::string fail_msg;
    int retry_after = 0;
    bool failed = false;
    try {
        grant = source->acquire(a, rt);
        if (grant.access_token.empty() || grant.expires_in <= 0) {
            failed = true;
            fail_msg = "the token endpoint returned no usable access token";
        }
    } catch (const OAuthError& e) {
        failed = true;
        fail_class = e.error_class();
        fail_msg = e.what();
        retry_after = e.retry_after();
    } catch (const Error& e) {
        failed = true;
        fail_class = e.error_class();
        fail_msg = e.what();
    } catch (const std::exception& e) {
        failed = true;
        fail_msg = e.what();
    }
    now = this->now();

    if (failed) {
        fail_msg = redact(fail_msg);
        next.failures = std::min(next.failures + 1, 1000);
        std::int64_t backoff = kBackoffMax;
        if (next.failures <= 7)
            backoff = std::min(kBackoffFirst << (next.failures - 1), kBackoffMax);
        backoff = std::max<std::int64_t>(backoff, retry_after);
        next.backoff_until = now + backoff;
        next.last_error = LastError{now, fail_class, fail_msg};
        log_warning("token refresh for account " + a.name + " failed (" +
                    std::string(to_string(fail_class)) + "): " + fail_msg +
                    "; no new attempt for " + std::to_string(backoff) + " s");
        try {
            write(a, next);
        } catch (const Error& e) {
            log_error(std::string("token cache: could not record the failure: ") + e.what());
        }
        if (can_fall_back) {
            log_info("token cache: account " + a.name + ": using the current token (" +
                     std::to_string(current.expires_at - now) + " s left)");
            return current;
        }
        throw Error(fail_class, "token refresh for account " + a.name + " failed: " + fail_msg);
    }

    add_secret(grant.access_token);
    if (!grant.refresh_token.empty()) add_secret(grant.refresh_token);
    next.access_token = grant.access_token;
    next.obtained_at = now;
    next.expires_at = now + grant.expires_in;
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
    try {
        write(a, next);
    } catch (const Error& e) {
        // The token is good: the delivery may go on. A rotated refresh token is
        // lost with this write, so say so loudly.
        log_error(std::string(e.what()) +
                  (a.flow == Flow::delegated && !grant.refresh_token.empty()
                       ? " (the rotated refresh token of account " + a.name +
                             " is lost; `o365relayctl login " + a.name + "` may be needed)"
                       : std::string()));
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

void TokenCache::Impl::locked_store(const Account& a, const TokenGrant& g) {
    if (g.access_token.empty() || g.expires_in <= 0)
        throw Error(ErrorClass::temporary, "token cache: refusing to store a grant for account " +
                                               a.name + " without an access token");
    ensure_cache_dir(state_dir, dir);
    auto mu = mutex_for(a.name);
    std::lock_guard thread_lock(*mu);
    FileLock file_lock(dir + "/" + a.name + ".lock", lock_timeout(a));
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
    write(a, e);
    log_info("token cache: stored a new token for account " + a.name + " (expires in " +
             std::to_string(g.expires_in) + " s)");
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

AccessToken TokenCache::get(const Account& a) {
    check_account_name(a.name);
    // Warm path: no lock, no request. Open, read, parse, validate.
    std::optional<CacheEntry> cur = impl_->load(a, fingerprint(a), false);
    if (Impl::has_token(cur)) {
        const std::int64_t now = impl_->now();
        const std::int64_t left = cur->expires_at - now;
        if (left > effective_window(a)) return AccessToken{cur->access_token, cur->expires_at};
        // In backoff: no lock either; the current token if it still may be sent.
        if (cur->last_error && now < cur->backoff_until) {
            if (left > kMinLeft) return AccessToken{cur->access_token, cur->expires_at};
            throw Error(cur->last_error->error_class, backoff_message(a, *cur, now));
        }
    } else if (cur && cur->last_error && impl_->now() < cur->backoff_until) {
        throw Error(cur->last_error->error_class, backoff_message(a, *cur, impl_->now()));
    }
    return impl_->locked_refresh(a, Mode::get, {});
}

AccessToken TokenCache::refresh(const Account& a, const std::string& rejected) {
    check_account_name(a.name);
    return impl_->locked_refresh(a, Mode::rejected, rejected);
}

AccessToken TokenCache::force_refresh(const Account& a) {
    check_account_name(a.name);
    return impl_->locked_refresh(a, Mode::force, {});
}

std::optional<CacheEntry> TokenCache::peek(const Account& a) const {
    try {
        check_account_name(a.name);
        std::optional<CacheEntry> e = impl_->load(a, fingerprint(a), true);
        if (e && e->credential_fingerprint.empty()) return std::nullopt;  // fingerprint changed
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
    const EntraSettings& s = a.entra;
    Hasher h;
    h.add("v", "1");
    h.add("authority", s.authority);
    h.add("tenant", s.tenant);
    h.add("client_id", s.client_id);
    h.add("flow", flow_name(a.flow));
    h.add("scope", s.scope);
    h.add_file("certificate_file", s.certificate_file);
    h.add_file("private_key_file", s.private_key_file);
    h.add_file("client_secret_file", s.client_secret_file);
    h.add("assertion_alg", s.assertion_alg == AssertionAlg::rs256 ? "RS256" : "PS256");
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
