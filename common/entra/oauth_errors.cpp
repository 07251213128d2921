#include "oauth_errors.hpp"

#include <nlohmann/json.hpp>

#include "aadsts.hpp"

namespace o365 {

namespace {

// The first line of peer text, printable, at most `max` bytes (not cutting a
// UTF-8 sequence).
std::string first_line(std::string_view s, std::size_t max) {
    std::string out;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\r' || c == '\n') break;
        if (c < 0x20 || c == 0x7f) c = ' ';
        out.push_back(static_cast<char>(c));
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    if (out.size() > max) {
        std::size_t cut = max;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
            --cut;
        out.resize(cut);
        out += "...";
    }
    return out;
}

// "AADSTSnnnn" at the start of (or anywhere in) the description.
std::string code_in(std::string_view desc) {
    std::size_t p = desc.find("AADSTS");
    if (p == std::string_view::npos) return {};
    std::size_t e = p + 6;
    while (e < desc.size() && e - p < 18 && desc[e] >= '0' && desc[e] <= '9')
        ++e;
    if (e == p + 6) return {};
    return std::string(desc.substr(p, e - p));
}

bool is_device_wait(const std::string& e) {
    return e == "authorization_pending" || e == "slow_down";
}

bool is_device_final(const std::string& e) {
    return e == "authorization_declined" || e == "expired_token" || e == "bad_verification_code";
}

}  // namespace

OAuthError classify_token_error(long status, std::string_view body, int retry_after,
                                std::string_view account) {
    std::string error, desc, aadsts;
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object()) {
        auto it = j.find("error");
        if (it != j.end() && it->is_string()) error = first_line(it->get<std::string>(), 80);
        it = j.find("error_description");
        if (it != j.end() && it->is_string()) desc = it->get<std::string>();
        aadsts = code_in(first_line(desc, 4096));
        if (aadsts.empty()) {
            it = j.find("error_codes");
            if (it != j.end() && it->is_array() && !it->empty() && it->front().is_number_unsigned())
                aadsts = "AADSTS" + std::to_string(it->front().get<unsigned long long>());
        }
    }
    const bool throttled = status == 429;
    const bool server = status >= 500 && status <= 599;
    const bool success = status >= 200 && status <= 299;

    std::string msg;
    ErrorClass cls;
    if (error.empty()) {
        cls = ErrorClass::temporary;
        if (throttled)
            msg = "Entra throttled the token request";
        else if (server)
            msg = "Entra answered with a server error";
        else
            msg = "malformed answer from Entra: not an OAuth error";
        if (!success) {
            std::string peer = first_line(body, 120);
            if (!peer.empty()) msg += ": " + peer;
        }
    } else {
        if (throttled || server || error == "temporarily_unavailable" || error == "server_error" ||
            aadsts_is_temporary(aadsts) || is_device_wait(error))
            cls = ErrorClass::temporary;
        else if (is_device_final(error))
            cls = ErrorClass::permanent;
        else
            cls = ErrorClass::configuration;
        msg = error;
        std::string d = first_line(desc, 300);
        if (!aadsts.empty() && d.find(aadsts) == std::string::npos) msg += ": " + aadsts;
        if (!d.empty()) msg += ": " + d;
    }
    if (throttled || server || error.empty()) msg += " [HTTP " + std::to_string(status) + "]";
    if (retry_after > 0) msg += " [retry after " + std::to_string(retry_after) + " s]";
    std::string hint = aadsts_hint(aadsts, account);
    if (hint.empty() && is_device_final(error))
        hint = account.empty() ? "run `o365relayctl login ACCOUNT` again"
                               : "run `o365relayctl login " + std::string(account) + "` again";
    if (!hint.empty()) msg += " (hint: " + hint + ")";
    return OAuthError(cls, msg, error, aadsts, static_cast<int>(status), retry_after);
}

}  // namespace o365
