// libFuzzer target for the Entra answer readers (token_response.hpp,
// oauth_errors.hpp). Input: first byte picks the HTTP status, second the
// Retry-After, the rest is the body. Invariants: only OAuthError escapes;
// its message is one bounded line; a 200 success has a printable token and a
// lifetime in range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "oauth_errors.hpp"
#include "token_response.hpp"

using namespace o365;

namespace {

void check_message(const OAuthError& e) {
    std::string_view m = e.what();
    if (m.find('\n') != std::string_view::npos || m.find('\r') != std::string_view::npos ||
        m.size() > 2000)
        std::abort();
}

bool printable(const std::string& s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (c <= 0x20 || c >= 0x7f) return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    static const long statuses[] = {200, 200, 200, 400, 401, 403, 404, 429,
                                    500, 502, 503, 0,   302, 599, 600, 199};
    long status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    int retry_after = data[1] % 4 == 0 ? 0 : data[1];
    std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);

    try {
        TokenGrant g = read_token_answer(status, body, retry_after, "fuzz");
        if (status != 200 || !printable(g.access_token) || g.expires_in < 1 ||
            g.expires_in > 30LL * 86400)
            std::abort();
        if (!g.refresh_token.empty() && !printable(g.refresh_token)) std::abort();
    } catch (const OAuthError& e) {
        check_message(e);
    }
    try {
        DeviceCode d = read_device_code_answer(status, body, retry_after, "fuzz");
        if (status != 200 || d.device_code.empty() || d.interval < 1 || d.expires_in < 1)
            std::abort();
    } catch (const OAuthError& e) {
        check_message(e);
    }
    OAuthError e = classify_token_error(status, body, retry_after, "fuzz");
    check_message(e);
    if (e.retry_after() != retry_after || e.http_status() != status) std::abort();
    return 0;
}
