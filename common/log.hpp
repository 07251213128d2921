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

// Registers a secret value (token, secret, assertion): it is masked in every
// later line. Values shorter than 8 bytes are ignored.
void add_secret(std::string_view secret);

// The text with every registered secret and every secret-shaped value replaced
// by "[redacted]".
std::string redact(std::string_view text);

}  // namespace o365
