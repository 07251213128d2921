#include "accounts.hpp"

#include "address.hpp"

namespace o365 {

std::string address_key(std::string_view address) {
    auto a = parse_address(address);
    if (!a) return {};
    return lower_ascii(a->local) + "@" + a->domain;
}

Resolver::Resolver(std::shared_ptr<const Config> config) : config_(std::move(config)) {
    for (const Account& acc : config_->accounts) {
        for (const std::string& s : acc.senders) {
            if (!s.empty() && s[0] == '@')
                domain_.emplace(lower_ascii(s.substr(1)), &acc);
            else
                exact_.emplace(lower_ascii(s), &acc);  // emplace keeps the first
        }
    }
}

const Account* Resolver::resolve(std::string_view sender) const {
    std::string key = address_key(sender);
    if (key.empty()) return nullptr;
    if (auto it = exact_.find(key); it != exact_.end()) return it->second;
    std::string domain = key.substr(key.rfind('@') + 1);
    if (auto it = domain_.find(domain); it != domain_.end()) return it->second;
    return nullptr;
}

bool Resolver::may_send_as(const Account& account, std::string_view address) const {
    std::string key = address_key(address);
    if (key.empty()) return false;
    std::string domain = key.substr(key.rfind('@'));
    for (const std::string& s : account.senders) {
        if (lower_ascii(s) == key || lower_ascii(s) == domain) return true;
    }
    return lower_ascii(account.mailbox) == key;
}

}  // namespace o365
