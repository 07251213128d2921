#include "address.hpp"

namespace o365 {

std::string lower_ascii(std::string_view s) {
    std::string r(s);
    for (char& c : r)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return r;
}

bool has_control_chars(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return true;
    return false;
}

bool has_8bit(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return true;
    return false;
}

std::optional<Address> parse_address(std::string_view s) {
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
    if (s.empty() || s.size() > 512 || has_control_chars(s)) return std::nullopt;
    // Find the '@' that separates local part and domain: the last one outside quotes.
    bool quoted = false;
    std::size_t at = std::string_view::npos;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (quoted && c == '\\') {
            ++i;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && c == '@')
            at = i;
        else if (!quoted && (c == ' ' || c == '<' || c == '>' || c == ','))
            return std::nullopt;
    }
    if (quoted || at == std::string_view::npos || at == 0) return std::nullopt;
    std::string_view domain = s.substr(at + 1);
    if (domain.empty() || domain.find('@') != std::string_view::npos || domain.front() == '.' ||
        domain.back() == '.' || domain.find("..") != std::string_view::npos)
        return std::nullopt;
    for (unsigned char c : domain)
        if (c == '"' || c == '\\' || c == ' ') return std::nullopt;
    return Address{std::string(s.substr(0, at)), lower_ascii(domain)};
}

namespace {

// Removes (comments) outside quoted strings; keeps everything else.
std::string strip_comments(std::string_view v) {
    std::string out;
    int depth = 0;
    bool quoted = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
        char c = v[i];
        if (c == '\\' && i + 1 < v.size() && (quoted || depth > 0)) {
            if (depth == 0) {
                out += c;
                out += v[i + 1];
            }
            ++i;
            continue;
        }
        if (depth == 0 && c == '"') quoted = !quoted;
        if (!quoted && c == '(') {
            ++depth;
            continue;
        }
        if (!quoted && c == ')' && depth > 0) {
            --depth;
            continue;
        }
        if (depth == 0) out += c;
    }
    return out;
}

std::string trim_ws(std::string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n'))
        ++b;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n'))
        --e;
    return std::string(s.substr(b, e - b));
}

}  // namespace

std::optional<std::string> header_address(std::string_view value) {
    std::string v = strip_comments(value);
    // First '<' outside quotes starts the angle address.
    bool quoted = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
        char c = v[i];
        if (c == '\\' && quoted) {
            ++i;
            continue;
        }
        if (c == '"') quoted = !quoted;
        if (!quoted && c == '<') {
            auto close = v.find('>', i);
            if (close == std::string::npos) return std::nullopt;
            std::string a = trim_ws(std::string_view(v).substr(i + 1, close - i - 1));
            if (a.empty()) return std::nullopt;
            return a;
        }
        if (!quoted && (c == ',' || c == ';')) break;
    }
    // A bare addr-spec, possibly the first of a list or after "group:".
    std::string t = trim_ws(v);
    auto colon = t.find(':');
    if (colon != std::string::npos && t.find('"') > colon) t = trim_ws(t.substr(colon + 1));
    auto comma = t.find_first_of(",;");
    if (comma != std::string::npos) t = trim_ws(t.substr(0, comma));
    if (t.empty()) return std::nullopt;
    return t;
}

std::string header_display_name(std::string_view value) {
    bool quoted = false;
    int depth = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        char c = value[i];
        if (c == '\\' && (quoted || depth > 0)) {
            ++i;
            continue;
        }
        if (depth == 0 && c == '"') quoted = !quoted;
        if (!quoted && c == '(') ++depth;
        if (!quoted && c == ')' && depth > 0) --depth;
        if (!quoted && depth == 0 && c == '<') return trim_ws(value.substr(0, i));
    }
    return "";
}

}  // namespace o365
