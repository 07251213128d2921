// libFuzzer target: header_addresses() (common/address) never crashes, reads
// no byte out of bounds, and agrees with header_mailboxes() and with itself
// (the same input always gives the same list).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string s(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> addresses = o365::header_addresses(s);
    std::vector<o365::HeaderMailbox> boxes = o365::header_mailboxes(s);
    if (addresses.size() != boxes.size()) std::abort();
    for (std::size_t i = 0; i < boxes.size(); ++i)
        if (boxes[i].address != addresses[i]) std::abort();
    if (o365::header_addresses(s) != addresses) std::abort();
    (void)o365::header_comment(s);
    return 0;
}
