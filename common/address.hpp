// address: e-mail address values shared by config, the resolver, the milter
// policy and the transport.
//
// Contract: parse_address() accepts "local@domain" or "<local@domain>", with a
// quoted local part ("john doe"@example.com) and UTF-8 (SMTPUTF8) bytes; it
// returns nullopt for anything else (no '@', empty domain, control characters,
// unbalanced quotes). Domains compare case-insensitively (ASCII), local parts
// are kept as written (Exchange treats them case-insensitively; resolve() in
// accounts.hpp folds them). Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace o365 {

struct Address {
    std::string local;   // as written, quotes included
    std::string domain;  // lower-cased ASCII; UTF-8 bytes kept

    // local@domain with the domain lower-cased.
    std::string normalized() const { return local + "@" + domain; }
};

std::string lower_ascii(std::string_view s);

// True when s contains a byte < 0x20 or 0x7f (CR, LF, TAB, NUL, ...).
bool has_control_chars(std::string_view s);

// True when s has bytes >= 0x80 (needs SMTPUTF8 in an envelope address).
bool has_8bit(std::string_view s);

std::optional<Address> parse_address(std::string_view s);

// The address of an RFC 5322 mailbox header value such as
// `"Doe, John" <john@example.com> (comment)` or `john@example.com`.
// Returns the bare address text (not validated) or nullopt when none is found.
// With several mailboxes (a group or a list) returns the first one.
std::optional<std::string> header_address(std::string_view value);

// The display name part of a header From value ("" when there is none), kept as
// written (quotes and encoded words included).
std::string header_display_name(std::string_view value);

}  // namespace o365
