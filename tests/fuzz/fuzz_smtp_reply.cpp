// libFuzzer target: the SMTP reply parser never crashes, and gives the same
// replies (or the same error) whatever the fragmentation of its input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "error.hpp"
#include "smtp_reply.hpp"

namespace {

// All replies, then "ERR:<message>" if the input was refused.
std::vector<std::string> parse(std::string_view in, std::size_t step) {
    o365::ReplyParser p(o365::ReplyParser::Limits{512, 20});
    std::vector<std::string> out;
    try {
        for (std::size_t i = 0; i < in.size(); i += step) {
            p.feed(in.substr(i, step));
            while (auto r = p.next()) {
                std::string t = r->text();
                for (char c : t)
                    if (static_cast<unsigned char>(c) < 0x20) std::abort();  // one printable line
                if (r->code < 200 || r->code > 599) std::abort();
                out.push_back(std::to_string(r->code) + "|" + r->enhanced + "|" + t);
            }
        }
    } catch (const o365::Error& e) {
        out.push_back(std::string("ERR:") + e.what());
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::size_t step = 1 + data[0] % 17;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    auto whole = parse(in, in.size() ? in.size() : 1);
    auto pieces = parse(in, step);
    // Replies completed in the same feed() as a malformed line are not handed
    // out (the whole feed fails): the whole-input replies are a prefix of the
    // piecewise ones, and both end with the same error, or neither fails.
    auto err = [](std::vector<std::string>& v) {
        std::string e;
        if (!v.empty() && v.back().rfind("ERR:", 0) == 0) {
            e = v.back();
            v.pop_back();
        }
        return e;
    };
    std::string ew = err(whole), ep = err(pieces);
    if (ew != ep) std::abort();
    if (whole.size() > pieces.size() || !std::equal(whole.begin(), whole.end(), pieces.begin()))
        std::abort();
    if (ew.empty() && whole != pieces) std::abort();
    (void)o365::parse_enhanced_code(in);
    return 0;
}
