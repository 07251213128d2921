#include "sender_rules.hpp"

#include <vector>

#include "address.hpp"

namespace o365 {

NullSenderAccount null_sender_account(const Config& config) {
    const PolicySettings& p = config.policy;
    NullSenderAccount r;
    if (p.null_sender == NullSender::reject) {
        r.refusal = "mail with the null sender <> is not relayed (null_sender = reject)";
    } else if (p.null_sender_account.empty()) {
        r.refusal = "mail with the null sender <> is not relayed (no null_sender_account is set)";
    } else if (const Account* a = config.find_account(p.null_sender_account)) {
        r.account = a;
    } else {
        r.refusal_class = ErrorClass::configuration;
        r.refusal = "mail with the null sender <> is not relayed: null_sender_account " +
                    p.null_sender_account + " is not a configured account";
    }
    return r;
}

namespace {

// The first address of `addresses` that `account` may not send as.
const std::string* first_unaligned(const Resolver& resolver, const Account& account,
                                   const std::vector<std::string>& addresses) {
    for (const std::string& a : addresses)
        if (!resolver.may_send_as(account, a)) return &a;
    return nullptr;
}

bool is_atext(unsigned char c) {
    if (c >= 0x80) return true;  // UTF-8 (RFC 6532)
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
           std::string_view::npos;
}

// A comment's text as a display name: a quoted string, except text made of
// atoms that holds an encoded word ("=?utf-8?q?J=C3=B6rg?="), kept bare so
// that mail readers still decode it.
std::string comment_phrase(std::string_view text) {
    bool atoms_only = true;
    for (unsigned char c : text)
        atoms_only = atoms_only && (is_atext(c) || c == ' ' || c == '\t');
    if (atoms_only && text.find("=?") != std::string_view::npos &&
        text.find("?=") != std::string_view::npos)
        return std::string(text);
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace

std::optional<std::string> null_sender_from(const Resolver& resolver, const Account& account,
                                            std::string_view value) {
    std::vector<HeaderMailbox> boxes = header_mailboxes(value);
    std::vector<std::string> addresses;
    for (const HeaderMailbox& m : boxes)
        addresses.push_back(m.address);
    if (!addresses.empty() && !first_unaligned(resolver, account, addresses)) return std::nullopt;

    std::string display;
    if (!boxes.empty()) {
        display = boxes.front().display;
        if (display.empty() && !boxes.front().comment.empty())
            display = comment_phrase(boxes.front().comment);
    } else if (std::string c = header_comment(value); !c.empty()) {
        display = comment_phrase(c);
    }
    std::string mailbox = "<" + account.mailbox + ">";
    return display.empty() ? mailbox : display + " " + mailbox;
}

std::optional<std::string> alignment_refusal(const Resolver& resolver, const Account& account,
                                             std::string_view field, std::string_view value) {
    std::vector<std::string> addresses = header_addresses(value);
    std::string tail = " account " + account.name + " may send as";
    if (addresses.empty())
        return "header " + std::string(field) + " \"" + std::string(value) + "\" holds no address" +
               tail;
    if (const std::string* bad = first_unaligned(resolver, account, addresses))
        return "header " + std::string(field) + " " + *bad + " is not an address" + tail;
    return std::nullopt;
}

}  // namespace o365
