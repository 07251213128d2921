#include "reply_text.hpp"

namespace o365 {

std::string milter_reply_text(std::string_view text) {
    constexpr std::size_t kMax = 400;
    std::string out;
    out.reserve(text.size() + 8);
    for (std::size_t i = 0; i < text.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        std::size_t need = c == '%' ? 2 : 1;
        if (out.size() + need > kMax - 3) {
            // Do not cut a UTF-8 sequence: drop trailing continuation bytes and
            // the lead byte they belong to.
            while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80)
                out.pop_back();
            if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
            out += "...";
            return out;
        }
        if (c == '%')
            out += "%%";
        else if (c < 0x20 || c == 0x7f)
            out += ' ';
        else
            out += static_cast<char>(c);
    }
    return out;
}

}  // namespace o365
