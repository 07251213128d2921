#include "graph_error.hpp"

#include <nlohmann/json.hpp>

namespace o365 {

namespace {

constexpr std::size_t kMaxCode = 100;
constexpr std::size_t kMaxMessage = 300;

std::string clean_code(std::string_view v) {
    std::string out;
    for (char c : v) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (ok) out += c;
        if (out.size() == kMaxCode) break;
    }
    return out;
}

// One printable line: control bytes become spaces, runs of spaces one, cut at kMaxMessage.
std::string clean_message(std::string_view v) {
    std::string out;
    for (char c : v) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) c = ' ';
        if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
        out += c;
        if (out.size() > kMaxMessage) {
            out.resize(kMaxMessage - 3);
            return out + "...";
        }
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

std::string text_of(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return {};
    return it->get<std::string>();
}

}  // namespace

GraphError parse_graph_error(std::string_view body) {
    nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
        auto e = j.find("error");
        if (e != j.end() && e->is_object())
            return GraphError{clean_code(text_of(*e, "code")),
                              clean_message(text_of(*e, "message"))};
    }
    return GraphError{"", clean_message(body.substr(0, kMaxMessage * 4))};
}

}  // namespace o365
