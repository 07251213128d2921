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
#include <vector>

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

// One mailbox of an RFC 5322 address list (From, Sender, To, ...).
struct HeaderMailbox {
    std::string address;  // the addr-spec, comments and folding white space removed; not validated
    std::string display;  // the display name as written (quotes, encoded words, comments kept)
    std::string comment;  // the text of its first comment ("addr (Comment)"), "" when none
};

// Every mailbox of an RFC 5322 address list, in order: name-addr and addr-spec
// forms, groups ("Team: a@x, b@y;" gives a@x and b@y; an empty group gives
// nothing), quoted strings and comments that contain ',', '@', '<' or ':',
// domain literals, and the obsolete forms (empty list elements, a route
// "<@relay:a@x>", white space around '.' and '@'). Never drops text that
// could name a mailbox: a malformed element (an unterminated quote, comment or
// angle address) is returned as written, so that a caller's check of the
// address refuses it rather than missing it. Pure, thread-safe.
std::vector<HeaderMailbox> header_mailboxes(std::string_view value);

// The addresses of header_mailboxes(value).
std::vector<std::string> header_addresses(std::string_view value);

// The text of the first comment of a header value outside quoted strings ("",
// when there is none): "MAILER-DAEMON@x (Mail Delivery System)" gives
// "Mail Delivery System".
std::string header_comment(std::string_view value);

// The display name part of a header From value ("" when there is none), kept as
// written (quotes and encoded words included).
std::string header_display_name(std::string_view value);

}  // namespace o365
