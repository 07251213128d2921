// text: small string helpers shared by the units that read text (the config
// file and its schema). Pure functions, thread-safe, never throw beyond
// std::bad_alloc.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace o365 {

// `s` without leading and trailing white space (ASCII isspace).
inline std::string trim(std::string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
        ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
        --e;
    return std::string(s.substr(b, e - b));
}

}  // namespace o365
