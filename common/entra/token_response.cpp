#include "token_response.hpp"

#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>

#include "log.hpp"
#include "oauth_errors.hpp"

namespace o365 {

namespace {

using nlohmann::json;

constexpr std::int64_t kMaxLifetime = 30LL * 86400;

[[noreturn]] void malformed(const std::string& why, long status) {
    throw OAuthError(
        ErrorClass::temporary,
        "malformed token answer from Entra: " + why + " [HTTP " + std::to_string(status) + "]", {},
        {}, static_cast<int>(status));
}

// A token must be safe to put in an XOAUTH2 line: printable ASCII, no spaces.
bool token_shaped(const std::string& s) {
    if (s.empty() || s.size() > 64 * 1024) return false;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f) return false;
    }
    return true;
}

// A positive integer number of seconds given as a JSON number or string of digits.
std::int64_t seconds(const json& v, const char* name, long status, std::int64_t max) {
    std::int64_t n = -1;
    if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        n = u > static_cast<std::uint64_t>(max) ? max + 1 : static_cast<std::int64_t>(u);
    } else if (v.is_number_integer()) {
        n = v.get<std::int64_t>();
    } else if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        if (s.empty() || s.size() > 12) malformed(std::string(name) + " is not a number", status);
        for (char c : s)
            if (!std::isdigit(static_cast<unsigned char>(c)))
                malformed(std::string(name) + " is not a number", status);
        n = std::stoll(s);
    } else {
        malformed(std::string(name) + " is missing or not a number", status);
    }
    if (n < 1 || n > max)
        malformed(std::string(name) + " " + std::to_string(n) + " is out of range", status);
    return n;
}

json parse_object(long status, std::string_view body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) malformed("not JSON", status);
    if (!j.is_object()) malformed("not a JSON object", status);
    return j;
}

bool has_error(const json& j) {
    auto it = j.find("error");
    return it != j.end() && !it->is_null();
}

}  // namespace

TokenGrant read_token_answer(long status, std::string_view body, int retry_after,
                             std::string_view account) {
    if (status != 200) throw classify_token_error(status, body, retry_after, account);
    json j = parse_object(status, body);
    if (has_error(j)) throw classify_token_error(status, body, retry_after, account);

    TokenGrant g;
    auto at = j.find("access_token");
    if (at == j.end() || !at->is_string()) malformed("no access_token", status);
    g.access_token = at->get<std::string>();
    add_secret(g.access_token);
    if (!token_shaped(g.access_token)) malformed("access_token is empty or not printable", status);

    auto rt = j.find("refresh_token");
    if (rt != j.end() && !rt->is_null()) {
        if (!rt->is_string()) malformed("refresh_token is not a string", status);
        g.refresh_token = rt->get<std::string>();
        add_secret(g.refresh_token);
        if (!token_shaped(g.refresh_token)) malformed("refresh_token is not printable", status);
    }

    auto tt = j.find("token_type");
    if (tt != j.end()) {
        if (!tt->is_string()) malformed("token_type is not a string", status);
        std::string t = tt->get<std::string>();
        for (char& c : t)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (t != "bearer") malformed("token_type is not Bearer", status);
    }

    auto ei = j.find("expires_in");
    if (ei == j.end()) malformed("no expires_in", status);
    g.expires_in = seconds(*ei, "expires_in", status, kMaxLifetime);
    return g;
}

DeviceCode read_device_code_answer(long status, std::string_view body, int retry_after,
                                   std::string_view account) {
    if (status != 200) throw classify_token_error(status, body, retry_after, account);
    json j = parse_object(status, body);
    if (has_error(j)) throw classify_token_error(status, body, retry_after, account);
    auto str = [&](std::initializer_list<const char*> names, bool required) -> std::string {
        for (const char* n : names) {
            auto it = j.find(n);
            if (it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty())
                return it->get<std::string>();
        }
        if (required) malformed(std::string("devicecode answer has no ") + *names.begin(), status);
        return {};
    };
    DeviceCode d;
    d.device_code = str({"device_code"}, true);
    add_secret(d.device_code);
    if (!token_shaped(d.device_code)) malformed("device_code is not printable", status);
    d.user_code = str({"user_code"}, true);
    d.verification_uri = str({"verification_uri", "verification_url"}, true);
    d.message = str({"message"}, false);
    if (auto it = j.find("interval"); it != j.end())
        d.interval = static_cast<int>(seconds(*it, "interval", status, 600));
    if (auto it = j.find("expires_in"); it != j.end())
        d.expires_in = static_cast<int>(seconds(*it, "expires_in", status, 86400));
    for (const std::string* s : {&d.user_code, &d.verification_uri, &d.message})
        for (char c : *s)
            if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\r')
                malformed("devicecode answer has control characters", status);
    return d;
}

}  // namespace o365
