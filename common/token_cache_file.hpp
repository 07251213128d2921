// token_cache_file: the on-disk side of the token cache (DESIGN.md section 5):
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
// - ensure_cache_dir() creates the directory 0700 if missing (and its parent
//   state_dir), refuses a symlink or a directory owned by another user, and
//   tightens a loose mode to 0700 (logged).
// - FileLock: exclusive flock(2) on <account>.lock, waits at most `timeout`;
//   released by the destructor (and by the kernel if the process dies).
// Thread-safe: free functions without shared state; a FileLock object is
// owned by one thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "token_cache.hpp"
#include "unique_fd.hpp"

namespace o365 {

enum class CacheFileStatus { ok, missing, loose, corrupt };

struct CacheFileRead {
    CacheFileStatus status = CacheFileStatus::missing;
    CacheEntry entry;    // valid when status == ok
    std::string reason;  // why corrupt / loose (for the log)
};

// The JSON text of an entry (one line, field order of DESIGN.md section 5).
std::string encode_cache_entry(const CacheEntry& e);

// Parses and type-checks; false with `why` set when the text is not a valid
// version 1 entry for `account`.
bool decode_cache_entry(std::string_view text, const std::string& account, CacheEntry& out,
                        std::string& why);

CacheFileRead read_cache_file(const std::string& path, const std::string& account);

void write_cache_file(const std::string& dir, const std::string& account, const CacheEntry& e);

void ensure_cache_dir(const std::string& state_dir, const std::string& dir);

class FileLock {
  public:
    FileLock(const std::string& path, std::chrono::milliseconds timeout);
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

  private:
    UniqueFd fd_;
};

}  // namespace o365
