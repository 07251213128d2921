// envelope: whether the sender and the recipients pipe(8) passed can ever be
// delivered. An address with a control character, without '@' or otherwise
// not an address (address.hpp), with a local part over 64 octets, a domain
// over 255 octets or a path over 256 octets (RFC 5321 4.5.3.1) is refused by
// every server, now and later: such an envelope fails permanently before any
// connection is made (docs/design.md section "Temporary or permanent";
// delivery_status.hpp says why permanent).
//
// Contract: envelope_failure() returns nullopt when every address is usable;
// otherwise the Failure (Cause::invalid_sender for the sender, checked first;
// Cause::invalid_recipient naming the first bad recipient, with
// others_accepted set when other recipients of the delivery are valid). The
// empty sender <> is valid. Texts show control characters as '?'.
// Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "failure.hpp"

namespace o365 {

// Why `address` can never be delivered to or from, or "" when it can.
std::string address_problem(std::string_view address);

std::optional<Failure> envelope_failure(const std::string& sender,
                                        const std::vector<std::string>& recipients);

// `s` with control characters shown as '?', at most 300 bytes (logs, DSNs).
std::string printable(std::string_view s);

}  // namespace o365
