// libFuzzer target: Graph's error JSON parser never crashes and always gives a
// bounded code of [A-Za-z0-9._-] and a bounded one-line message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "graph_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    o365::GraphError e = o365::parse_graph_error(in);
    if (e.code.size() > 100 || e.message.size() > 300) std::abort();
    for (char c : e.code) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) std::abort();
    }
    for (char c : e.message) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) std::abort();
    }
    return 0;
}
