#include "envelope.hpp"

#include "address.hpp"

namespace o365 {

namespace {

// RFC 5321 4.5.3.1.1 to 4.5.3.1.3.
constexpr std::size_t kMaxLocalPart = 64;
constexpr std::size_t kMaxDomain = 255;
constexpr std::size_t kMaxPath = 256;  // including the angle brackets

}  // namespace

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 300)) {
        unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    if (s.size() > 300) out += "...";
    return out;
}

std::string address_problem(std::string_view address) {
    if (has_control_chars(address)) return "it contains a control character";
    if (address.find('@') == std::string_view::npos) return "it has no '@' and domain";
    if (address.size() + 2 > kMaxPath)
        return "it is longer than " + std::to_string(kMaxPath - 2) + " octets (RFC 5321)";
    auto parsed = parse_address(address);
    if (!parsed) return "it is not an address";
    if (parsed->local.size() > kMaxLocalPart)
        return "its local part is longer than " + std::to_string(kMaxLocalPart) +
               " octets (RFC 5321)";
    if (parsed->domain.size() > kMaxDomain)
        return "its domain is longer than " + std::to_string(kMaxDomain) + " octets (RFC 5321)";
    return "";
}

std::optional<Failure> envelope_failure(const std::string& sender,
                                        const std::vector<std::string>& recipients) {
    if (!sender.empty()) {
        if (std::string why = address_problem(sender); !why.empty())
            return local_failure(Cause::invalid_sender, Stage::none,
                                 "sender <" + printable(sender) +
                                     "> is not a valid address: " + why + "; retrying cannot help");
    }
    std::optional<Failure> bad;
    std::size_t valid = 0;
    for (const std::string& r : recipients) {
        std::string why = address_problem(r);
        if (why.empty()) {
            ++valid;
        } else if (!bad) {
            bad = local_failure(Cause::invalid_recipient, Stage::none,
                                "recipient <" + printable(r) + "> is not a valid address: " + why +
                                    "; retrying cannot help");
            bad->recipient = printable(r);
        }
    }
    if (bad) bad->others_accepted = valid > 0;
    return bad;
}

}  // namespace o365
