// graph_limits: the message size a delivery method accepts, one rule for the
// milter (refuse at SMTP time) and the transport (refuse before any request)
// (docs/design.md section "Graph delivery").
//
// Contract: Microsoft Graph takes at most 4 MB (4,194,304 bytes) per request;
// base64 grows the MIME message by a third, so a Graph account sends messages
// of at most 3,145,728 bytes (the message as sent: CRLF lines, no
// dot-stuffing). SMTP has no limit of its own here ([policy] max_message_size
// and Exchange's limits apply). The refusal text says what to do.
// Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>

#include "config.hpp"

namespace o365 {

inline constexpr long long kGraphMaxRequest = 4194304;
inline constexpr long long kGraphMaxMessage = kGraphMaxRequest / 4 * 3;  // 3145728

// The largest message the account's method accepts; nullopt: no own limit.
std::optional<long long> method_size_limit(const Account& account);

// "message of N bytes is larger than the 3 MB Microsoft Graph accepts in one
// request; use method = smtp for this account or lower max_message_size"
std::string size_limit_refusal(const Account& account, long long size);

}  // namespace o365
