// log: one line per event, in Postfix's manner, to syslog (facility mail), to
// stderr, or appended to a file ("MMM dd HH:MM:SS host ident[pid]: text").
//
// Contract: every line passes through redact() before it is written, so that
// access tokens, refresh tokens, client secrets and JWT assertions never reach
// a log at any level. Values the process handles as secrets are registered with
// add_secret() and replaced wherever they appear; well-known shapes (JWTs,
// "Bearer x", token=/secret=/assertion= pairs, base64 XOAUTH2 blobs given to
// add_secret) are masked even when not registered. Each line is written with a
// single write(2) on an O_APPEND descriptor, so concurrent processes never
// interleave within a line. Thread-safe. Logging never throws.
//
// Log file ("file:/path", docs/design.md section 7): opened with
// O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW|O_CLOEXEC (and O_NONBLOCK until it is
// known to be a regular file, so a FIFO cannot hang the process), created with
// mode 0640 (less the umask). A symbolic link as the last component, or any
// file that is not a regular file, is refused. The target never changes
// silently: when log_init() or log_reopen() cannot open the file, the previous
// target (stderr before the first log_init) is kept and one line on it says
// why.
//
// Privileges: the file is opened by path, with the credentials the process has
// at that moment; no descriptor of the directory is kept, because openat(2)
// checks permissions against the current credentials anyway, so a directory
// descriptor opened as root grants nothing after the drop to [relay] user.
// Hence log_reopen() after logrotate works when the service user may open the
// new file: let logrotate create it for that user ("create 0640 o365relay
// adm"), or give the service user a directory of its own; under systemd the
// milter starts as the service user, so the files it creates are its own.
// When the service user cannot reopen the file, the old descriptor is kept
// (lines go on to the rotated file) and the reason is logged there once per
// reopen attempt.
#pragma once

#include <string>
#include <string_view>

#include "log_level.hpp"

namespace o365 {

// Sets the target ("syslog", "stderr", "file:/path"), minimum level and the
// program name. Until called, lines go to stderr at level info.
void log_init(std::string_view target, LogLevel level, std::string_view ident);

void log_line(LogLevel level, std::string_view text) noexcept;
inline void log_debug(std::string_view t) {
    log_line(LogLevel::debug, t);
}
inline void log_info(std::string_view t) {
    log_line(LogLevel::info, t);
}
inline void log_warning(std::string_view t) {
    log_line(LogLevel::warning, t);
}
inline void log_error(std::string_view t) {
    log_line(LogLevel::error, t);
}
bool log_enabled(LogLevel level);

// Reopens the current "file:" target by its path (for logrotate): the new file
// is opened first, then the descriptors are swapped under the log's lock, so
// no line is lost or split; on failure the old descriptor stays and one
// warning line on it says why. Does nothing for syslog and stderr. Not
// async-signal-safe: call it from a thread that waits for SIGHUP (sigwait),
// not from a signal handler. Never throws.
void log_reopen() noexcept;

// Registers a secret value (token, secret, assertion): it is masked in every
// later line. Values shorter than 8 bytes are ignored.
void add_secret(std::string_view secret);

// The text with every registered secret and every secret-shaped value replaced
// by "[redacted]".
std::string redact(std::string_view text);

}  // namespace o365
