// accounts: the sender -> account resolver, shared by the milter and the
// transport so that both always agree on which mailbox sends a message.
//
// Contract: resolve(sender) returns the account whose `senders` list names the
// address exactly (case-insensitive), else the account that lists its domain as
// "@domain", else nullptr ("no account"). An exact entry always beats a domain
// entry, whatever the order of sections; between two accounts listing the same
// entry, the first in the file wins. Lookups are O(1) in the number of
// accounts (hash maps built once). Immutable after construction: thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config.hpp"

namespace o365 {

class Resolver {
  public:
    explicit Resolver(std::shared_ptr<const Config> config);

    // nullptr: no account may send as this address (or it is not an address).
    const Account* resolve(std::string_view sender) const;

    // True when `account` may use `address` (envelope sender or header From).
    bool may_send_as(const Account& account, std::string_view address) const;

    const Config& config() const { return *config_; }

  private:
    std::shared_ptr<const Config> config_;
    std::unordered_map<std::string, const Account*> exact_;   // "local@domain", folded
    std::unordered_map<std::string, const Account*> domain_;  // "domain"
};

// The lookup key of an address: local part and domain lower-cased (ASCII), so
// that matching is case-insensitive as Exchange's is. Empty when not an address.
std::string address_key(std::string_view address);

}  // namespace o365
