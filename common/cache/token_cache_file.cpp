#include "token_cache_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "error.hpp"
#include "log.hpp"

namespace o365 {

namespace {

constexpr std::size_t kMaxEntrySize = 1 << 20;

std::string octal_mode(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
}

[[noreturn]] void fail(const std::string& msg) {
    throw Error(ErrorClass::temporary, msg);
}

[[noreturn]] void fail_errno(const std::string& what, const std::string& path) {
    int e = errno;
    fail("token cache: cannot " + what + " " + path + ": " + std::strerror(e));
}

bool class_from_string(std::string_view s, ErrorClass& c) {
    for (ErrorClass k : {ErrorClass::temporary, ErrorClass::permanent, ErrorClass::configuration}) {
        if (to_string(k) == s) {
            c = k;
            return true;
        }
    }
    return false;
}

// Refusal of a file that is not ours; the message names the file and the fix.
void check_owner(const struct stat& st, const std::string& path, const char* what) {
    uid_t me = ::geteuid();
    if (st.st_uid != me)
        fail(std::string("token cache: refusing ") + what + " " + path + ": owned by uid " +
             std::to_string(st.st_uid) + ", not by the service user (uid " + std::to_string(me) +
             "); remove it or chown it to the service user");
}

WriteFaultHook& fault_hook() {
    static WriteFaultHook hook;
    return hook;
}

// The test seam: true (errno set) when the hook fails `step`.
bool injected_fault(std::string_view step) {
    if (!fault_hook()) return false;
    int e = fault_hook()(step);
    if (e == 0) return false;
    errno = e;
    return true;
}

void write_all(int fd, const std::string& data, const std::string& path) {
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n =
            injected_fault("write") ? -1 : ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("write", path);
        }
        off += static_cast<std::size_t>(n);
    }
}

}  // namespace

std::string encode_cache_entry(const CacheEntry& e) {
    nlohmann::ordered_json j;
    j["version"] = 1;
    j["account"] = e.account;
    j["access_token"] = e.access_token;
    j["expires_at"] = e.expires_at;
    j["obtained_at"] = e.obtained_at;
    if (!e.refresh_token.empty()) j["refresh_token"] = e.refresh_token;
    j["credential_fingerprint"] = e.credential_fingerprint;
    if (e.last_error) {
        nlohmann::ordered_json le;
        le["at"] = e.last_error->at;
        le["class"] = std::string(to_string(e.last_error->error_class));
        le["message"] = e.last_error->message;
        j["last_error"] = le;
    } else {
        j["last_error"] = nullptr;
    }
    j["failures"] = e.failures;
    j["backoff_until"] = e.backoff_until;
    if (!e.refresh_binding.empty()) j["refresh_binding"] = e.refresh_binding;
    // Invalid UTF-8 (only possible in a peer's message) is replaced, never thrown.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool decode_cache_entry(std::string_view text, const std::string& account, CacheEntry& out,
                        std::string& why) {
    auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded()) {
        why = text.empty() ? "empty file" : "not valid JSON (truncated?)";
        return false;
    }
    if (!j.is_object()) {
        why = "not a JSON object";
        return false;
    }
    auto str = [&](const char* k, std::string& dst, bool required) {
        auto it = j.find(k);
        if (it == j.end() || it->is_null()) {
            if (required) why = std::string("missing field ") + k;
            return !required;
        }
        if (!it->is_string()) {
            why = std::string("field ") + k + " is not a string";
            return false;
        }
        dst = it->get<std::string>();
        return true;
    };
    auto num = [&](const nlohmann::json& o, const char* k, std::int64_t& dst, bool required) {
        auto it = o.find(k);
        if (it == o.end()) {
            if (required) why = std::string("missing field ") + k;
            return !required;
        }
        if (!it->is_number_integer()) {
            why = std::string("field ") + k + " is not an integer";
            return false;
        }
        dst = it->get<std::int64_t>();
        return true;
    };
    CacheEntry e;
    std::int64_t version = 0, failures = 0;
    if (!num(j, "version", version, true)) return false;
    if (version != 1) {
        why = "unknown version " + std::to_string(version);
        return false;
    }
    e.version = 1;
    if (!str("account", e.account, true)) return false;
    if (e.account != account) {
        why = "it names account '" + e.account + "'";
        return false;
    }
    if (!str("access_token", e.access_token, true) || !num(j, "expires_at", e.expires_at, true) ||
        !num(j, "obtained_at", e.obtained_at, true) ||
        !str("refresh_token", e.refresh_token, false) ||
        !str("credential_fingerprint", e.credential_fingerprint, true) ||
        !num(j, "failures", failures, false) || !num(j, "backoff_until", e.backoff_until, false) ||
        !str("refresh_binding", e.refresh_binding, false))
        return false;
    if (failures < 0 || failures > 1000000) {
        why = "field failures out of range";
        return false;
    }
    e.failures = static_cast<int>(failures);
    auto le = j.find("last_error");
    if (le == j.end()) {
        why = "missing field last_error";
        return false;
    }
    if (!le->is_null()) {
        if (!le->is_object()) {
            why = "field last_error is neither null nor an object";
            return false;
        }
        LastError l;
        auto c = le->find("class");
        auto m = le->find("message");
        if (!num(*le, "at", l.at, true)) return false;
        if (c == le->end() || !c->is_string() ||
            !class_from_string(c->get<std::string>(), l.error_class)) {
            why = "field last_error.class is missing or unknown";
            return false;
        }
        if (m == le->end() || !m->is_string()) {
            why = "field last_error.message is missing";
            return false;
        }
        l.message = m->get<std::string>();
        e.last_error = std::move(l);
    }
    out = std::move(e);
    return true;
}

CacheFileRead read_cache_file(const std::string& path, const std::string& account) {
    CacheFileRead r;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd) {
        if (errno == ENOENT) return r;  // missing
        if (errno == ELOOP)
            fail("token cache: refusing " + path +
                 ": it is a symbolic link (the cache only uses regular files); remove it");
        fail_errno("open", path);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail_errno("stat", path);
    if (!S_ISREG(st.st_mode)) fail("token cache: refusing " + path + ": not a regular file");
    check_owner(st, path, "file");
    if (st.st_mode & 077) {
        r.status = CacheFileStatus::loose;
        r.reason = "mode " + octal_mode(st.st_mode) + " lets group or other access it";
        return r;
    }
    if (static_cast<std::size_t>(st.st_size) > kMaxEntrySize) {
        r.status = CacheFileStatus::corrupt;
        r.reason = "larger than 1 MB";
        return r;
    }
    std::string text;
    text.resize(static_cast<std::size_t>(st.st_size) + 1);
    std::size_t len = 0;
    for (;;) {
        if (len == text.size()) text.resize(text.size() * 2);
        ssize_t n = ::read(fd.get(), text.data() + len, text.size() - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("read", path);
        }
        if (n == 0) break;
        len += static_cast<std::size_t>(n);
        if (len > kMaxEntrySize) {
            r.status = CacheFileStatus::corrupt;
            r.reason = "larger than 1 MB";
            return r;
        }
    }
    text.resize(len);
    if (!decode_cache_entry(text, account, r.entry, r.reason)) {
        r.status = CacheFileStatus::corrupt;
        return r;
    }
    r.status = CacheFileStatus::ok;
    return r;
}

void write_cache_file(const std::string& dir, const std::string& account, const CacheEntry& e) {
    const std::string name = account + ".json";
    const std::string tmp = "." + account + ".json.tmp";
    const std::string tmp_path = dir + "/" + tmp;
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dfd) fail_errno("open directory", dir);
    // Only the lock holder writes: a temp file still there was left by a killed writer.
    if (::unlinkat(dfd.get(), tmp.c_str(), 0) != 0 && errno != ENOENT)
        fail_errno("remove stale", tmp_path);
    UniqueFd fd(::openat(dfd.get(), tmp.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) fail_errno("create", tmp_path);
    try {
        if (::fchmod(fd.get(), 0600) != 0) fail_errno("chmod", tmp_path);
        write_all(fd.get(), encode_cache_entry(e), tmp_path);
        if (injected_fault("fsync") || ::fsync(fd.get()) != 0) fail_errno("fsync", tmp_path);
        fd.reset();
        if (injected_fault("rename") ||
            ::renameat(dfd.get(), tmp.c_str(), dfd.get(), name.c_str()) != 0)
            fail_errno("rename " + tmp_path + " to", dir + "/" + name);
    } catch (...) {
        ::unlinkat(dfd.get(), tmp.c_str(), 0);
        throw;
    }
    if (injected_fault("fsync directory") || ::fsync(dfd.get()) != 0)
        fail_errno("fsync directory", dir);
}

void set_write_fault_hook(WriteFaultHook hook) {
    fault_hook() = std::move(hook);
}

bool check_cache_dir(const std::string& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT) return false;
        fail_errno("stat", dir);
    }
    if (S_ISLNK(st.st_mode))
        fail("token cache: refusing directory " + dir + ": it is a symbolic link; remove it");
    if (!S_ISDIR(st.st_mode)) fail("token cache: refusing " + dir + ": not a directory");
    check_owner(st, dir, "directory");
    if (st.st_mode & 077)
        fail("token cache: refusing directory " + dir + ": mode " + octal_mode(st.st_mode) +
             " lets group or other access it (they could replace the tokens); run: chmod 700 " +
             dir);
    return true;
}

void ensure_cache_dir(const std::string& state_dir, const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0) {
        if (errno == ENOENT) {
            // The state directory itself is missing: create it (one level only).
            if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST)
                fail_errno("create state directory", state_dir);
            if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
                fail_errno("create directory", dir);
        } else if (errno != EEXIST) {
            fail_errno("create directory", dir);
        }
    }
    check_cache_dir(dir);
}

namespace {

std::int64_t secs(const struct timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec);
}

std::optional<WriteBackoff> marker_of(const struct stat& st) {
    // Present when mtime > atime (see the contract in the header).
    if (secs(st.st_mtim) <= secs(st.st_atim)) return std::nullopt;
    return WriteBackoff{secs(st.st_atim), secs(st.st_mtim)};
}

bool set_times(int fd, std::int64_t atime, std::int64_t mtime) {
    struct timespec ts[2] = {};
    ts[0].tv_sec = static_cast<time_t>(atime);
    ts[1].tv_sec = static_cast<time_t>(mtime);
    return ::futimens(fd, ts) == 0;
}

}  // namespace

std::optional<WriteBackoff> read_write_backoff(const std::string& lock_path) {
    struct stat st {};
    if (::lstat(lock_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return marker_of(st);
}

std::optional<WriteBackoff> FileLock::write_backoff() const {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) return std::nullopt;
    return marker_of(st);
}

bool FileLock::set_write_backoff(const WriteBackoff& b) {
    return set_times(fd_.get(), b.since, std::max(b.until, b.since + 1));
}

bool FileLock::clear_write_backoff(std::int64_t now) {
    return set_times(fd_.get(), now, now);
}

FileLock::FileLock(const std::string& path, std::chrono::milliseconds timeout,
                   std::optional<Deadline> deadline, const std::string& what)
    : path_(path) {
    fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
    if (!fd_) {
        if (errno == ELOOP)
            fail("token cache: refusing lock file " + path + ": it is a symbolic link; remove it");
        fail_errno("open lock file", path);
    }
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) fail_errno("stat", path);
    if (!S_ISREG(st.st_mode))
        fail("token cache: refusing lock file " + path + ": not a regular file");
    check_owner(st, path, "lock file");
    // Poll with a growing pause so that the wait is bounded (a refresh takes at
    // most one token request); the kernel drops the lock of a dead process.
    // The wait ends at min(timeout, deadline); which of them ended it decides the error.
    const auto own_end = std::chrono::steady_clock::now() + timeout;
    const bool deadline_first = deadline && *deadline < own_end;
    const auto end = deadline_first ? *deadline : own_end;
    auto pause = std::chrono::milliseconds(1);
    for (;;) {
        if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) return;
        if (errno != EWOULDBLOCK && errno != EINTR) fail_errno("lock", path);
        const auto now = std::chrono::steady_clock::now();
        if (now >= end && deadline_first)
            throw DeadlineError(what.empty() ? "the lock " + path : what);
        if (now >= end)
            fail("token cache: timed out after " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
                 " s waiting for the lock " + path + " (another process is refreshing)");
        std::this_thread::sleep_for(
            std::min<std::chrono::steady_clock::duration>(pause, end - now));
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
}

FileLock::~FileLock() {
    if (fd_) ::flock(fd_.get(), LOCK_UN);
}

}  // namespace o365
