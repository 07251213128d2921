// libFuzzer target: the transport's wire encoder and header rewriter.
// Invariants checked: any fragmentation gives the same output; the output,
// after DATA's CRLF, never contains CRLF "." CRLF; it ends with CRLF unless
// empty; every LF follows a CR; the rewriter with a "keep" callback is the
// identity, and with a rewriting callback still ends every line with CRLF.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "message_stream.hpp"

namespace {

std::string encode(std::string_view in, std::size_t step) {
    o365::WireEncoder e;
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += step)
        e.encode(in.substr(i, step), out);
    e.finish(out);
    return out;
}

std::string rewrite(std::string_view wire, std::size_t step, bool change) {
    o365::HeaderRewriter rw("From", [change](std::string_view) -> std::optional<std::string> {
        if (!change) return std::nullopt;
        return "N <n@x>";
    });
    std::string out;
    for (std::size_t i = 0; i < wire.size(); i += step)
        rw.feed(wire.substr(i, step), out);
    rw.finish(out);
    return out;
}

void check_wire(const std::string& w) {
    std::string framed = "\r\n" + w;
    if (framed.find("\r\n.\r\n") != std::string::npos) std::abort();
    if (!w.empty() && (w.size() < 2 || w.compare(w.size() - 2, 2, "\r\n") != 0)) std::abort();
    for (std::size_t i = 0; i < w.size(); ++i)
        if (w[i] == '\n' && (i == 0 || w[i - 1] != '\r')) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::size_t step = 1 + data[0] % 13;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::string whole = encode(in, in.size() ? in.size() : 1);
    if (encode(in, step) != whole) std::abort();
    check_wire(whole);
    if (rewrite(whole, step, false) != whole) std::abort();
    std::string changed = rewrite(whole, step, true);
    if (rewrite(whole, whole.size() ? whole.size() : 1, true) != changed) std::abort();
    check_wire(changed);
    return 0;
}
