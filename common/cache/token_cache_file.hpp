// token_cache_file: the on-disk side of the token cache (docs/design.md section Token cache):
// the JSON codec of one entry, the safe reader, the atomic writer, the
// directory check and the per-account lock file. No policy here (token_cache
// decides when to refresh).
//
// Contract:
// - read_cache_file() opens with O_NOFOLLOW and refuses (Error temporary, the
//   message names the file) a symlink, a non-regular file and a file owned by
//   another user than the effective uid. A file of ours that group or other may
//   access is reported as `loose` (not trusted); a file that does not parse or
//   does not match the account is reported as `corrupt` with the reason.
// - write_cache_file() writes <dir>/.<account>.json.tmp (O_EXCL|O_NOFOLLOW,
//   0600), fsyncs it, renames it over <account>.json and fsyncs the directory.
//   It must be called with the account's FileLock held (the temp name is fixed
//   per account; a stale temp left by a killed writer is removed first).
//   Throws Error temporary naming the file on any failure.
// - check_cache_dir() refuses (Error temporary naming the directory and the
//   fix) a symlink, a non-directory, a directory owned by another user and one
//   that group or other may access ("chmod 700 DIR"); false when it is missing.
//   Called on every path, the lock-free warm one included: a directory others
//   may write lets them swap the entry. ensure_cache_dir() creates it 0700 if
//   missing (and its parent state_dir), then checks it the same way.
// - FileLock: exclusive flock(2) on <account>.lock, waits at most
//   min(timeout, time left until the deadline); released by the destructor (and
//   by the kernel if the process dies). When the deadline ends the wait, it
//   throws DeadlineError("the token lock of account X"), else Error temporary.
// - The write backoff marker: when the entry cannot be written (disk full,
//   read-only, I/O error), there is no place for the backoff in the entry, so
//   it is kept in the timestamps of the existing lock file, which needs no
//   data block: atime = when the backoff started, mtime = when it ends.
//   A lock file normally has mtime <= atime (nobody writes or reads it), so
//   "mtime > atime" means a marker is present; clear_write_backoff() sets both
//   to the same time. read_write_backoff() stats the lock file without locking.
// - Test seam: set_write_fault_hook() makes write_cache_file() fail a step
//   ("write", "fsync", "rename", "fsync directory") with the errno the hook
//   returns (0: no fault). Process-wide, for tests only, not thread-safe.
// Thread-safe: free functions without shared state (but the test hook); a
// FileLock object is owned by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "deadline.hpp"
#include "token_cache.hpp"
#include "unique_fd.hpp"

namespace o365 {

enum class CacheFileStatus { ok, missing, loose, corrupt };

struct CacheFileRead {
    CacheFileStatus status = CacheFileStatus::missing;
    CacheEntry entry;    // valid when status == ok
    std::string reason;  // why corrupt / loose (for the log)
};

// The JSON text of an entry (one line, field order of docs/design.md section Token cache).
std::string encode_cache_entry(const CacheEntry& e);

// Parses and type-checks; false with `why` set when the text is not a valid
// version 1 entry for `account`.
bool decode_cache_entry(std::string_view text, const std::string& account, CacheEntry& out,
                        std::string& why);

CacheFileRead read_cache_file(const std::string& path, const std::string& account);

void write_cache_file(const std::string& dir, const std::string& account, const CacheEntry& e);

bool check_cache_dir(const std::string& dir);
void ensure_cache_dir(const std::string& state_dir, const std::string& dir);

// No automatic token request before `until` (unix seconds): the cache could
// not record a backoff in the entry. `since`: when this backoff started.
struct WriteBackoff {
    std::int64_t since = 0;
    std::int64_t until = 0;
};

// The marker of the lock file at `path`; nullopt when absent or no lock file.
std::optional<WriteBackoff> read_write_backoff(const std::string& lock_path);

class FileLock {
  public:
    // `what` names the lock in a DeadlineError ("the token lock of account X").
    FileLock(const std::string& path, std::chrono::milliseconds timeout,
             std::optional<Deadline> deadline = std::nullopt, const std::string& what = {});
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

    std::optional<WriteBackoff> write_backoff() const;
    // Both return false (errno kept) when the timestamps cannot be set.
    bool set_write_backoff(const WriteBackoff& b);
    bool clear_write_backoff(std::int64_t now);

  private:
    std::string path_;
    UniqueFd fd_;
};

// Test seam (see the contract above); an empty function removes the hook.
using WriteFaultHook = std::function<int(std::string_view step)>;
void set_write_fault_hook(WriteFaultHook hook);

}  // namespace o365
