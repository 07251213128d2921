// libFuzzer target: address and header From parsing never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string s(reinterpret_cast<const char*>(data), size);
    if (auto a = o365::parse_address(s)) (void)a->normalized();
    (void)o365::header_address(s);
    (void)o365::header_display_name(s);
    return 0;
}
