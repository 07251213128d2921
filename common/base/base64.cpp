#include "base64.hpp"

#include <openssl/evp.h>

#include "error.hpp"

namespace o365 {

namespace {

bool std_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

[[noreturn]] void bad(const std::string& why) {
    throw Error(ErrorClass::permanent, "invalid base64: " + why);
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    if (bytes.empty()) return {};
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string base64_decode(std::string_view text) {
    if (text.empty()) return {};
    if (text.size() % 4 != 0)
        bad("length " + std::to_string(text.size()) + " is not a multiple of 4");
    std::size_t pad = 0;
    if (text.back() == '=') ++pad;
    if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
    for (std::size_t i = 0; i < text.size() - pad; ++i)
        if (!std_char(text[i]))
            bad(text[i] == '='
                    ? "misplaced padding"
                    : "character " + std::to_string(static_cast<unsigned char>(text[i])) +
                          " at offset " + std::to_string(i) + " is not base64");
    std::string out(3 * text.size() / 4, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) bad("OpenSSL could not decode it");
    out.resize(static_cast<std::size_t>(n) - pad);  // DecodeBlock counts padding as zero bytes
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    std::string s = base64_encode(bytes);
    while (!s.empty() && s.back() == '=')
        s.pop_back();
    for (char& c : s) {
        if (c == '+')
            c = '-';
        else if (c == '/')
            c = '_';
    }
    return s;
}

std::string base64url_decode(std::string_view text) {
    std::string s(text);
    while (!s.empty() && s.back() == '=')
        s.pop_back();
    for (char& c : s) {
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (c == '+' || c == '/')
            bad("'+' or '/' in base64url text");
    }
    if (s.size() % 4 == 1) bad("length " + std::to_string(text.size()) + " is impossible");
    while (s.size() % 4 != 0)
        s.push_back('=');
    return base64_decode(s);
}

}  // namespace o365
