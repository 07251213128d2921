#include "smtp_reply.hpp"

#include "error.hpp"

namespace o365 {

namespace {

bool digit(char c) {
    return c >= '0' && c <= '9';
}

// A short, printable excerpt of a bad line for an error message.
std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 60)) {
        unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    if (s.size() > 60) out += "...";
    return out;
}

// Number of digits at s[pos..], at most `max`; 0 when none.
std::size_t digits_at(std::string_view s, std::size_t pos, std::size_t max) {
    std::size_t n = 0;
    while (pos + n < s.size() && n <= max && digit(s[pos + n]))
        ++n;
    return n;
}

}  // namespace

std::string parse_enhanced_code(std::string_view t) {
    if (t.size() < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.') return "";
    std::size_t pos = 2;
    std::size_t n = digits_at(t, pos, 3);
    if (n == 0 || n > 3) return "";
    pos += n;
    if (pos >= t.size() || t[pos] != '.') return "";
    ++pos;
    n = digits_at(t, pos, 3);
    if (n == 0 || n > 3) return "";
    pos += n;
    if (pos < t.size() && t[pos] != ' ') return "";
    return std::string(t.substr(0, pos));
}

std::string SmtpReply::text() const {
    std::string out = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        std::string_view l = lines[i];
        if (i > 0 && !enhanced.empty() && l.substr(0, enhanced.size()) == enhanced &&
            (l.size() == enhanced.size() || l[enhanced.size()] == ' ')) {
            l.remove_prefix(enhanced.size());
            while (!l.empty() && l.front() == ' ')
                l.remove_prefix(1);
        }
        if (l.empty()) continue;
        out += ' ';
        out += l;
    }
    return out;
}

void ReplyParser::fail(const std::string& why) {
    failed_ = "malformed reply from server: " + why;
    throw Error(ErrorClass::temporary, failed_);
}

void ReplyParser::feed(std::string_view bytes) {
    if (!failed_.empty()) throw Error(ErrorClass::temporary, failed_);
    for (char c : bytes) {
        if (c == '\n') {
            if (!line_.empty() && line_.back() == '\r') line_.pop_back();
            end_of_line();
            line_.clear();
            continue;
        }
        // +1: room for the CR of the CRLF that ends the line.
        if (line_.size() >= limits_.max_line + 1)
            fail("line longer than " + std::to_string(limits_.max_line) + " bytes: \"" +
                 excerpt(line_) + "\"");
        line_ += c;
    }
}

void ReplyParser::end_of_line() {
    std::string_view l = line_;
    if (l.size() > limits_.max_line)
        fail("line longer than " + std::to_string(limits_.max_line) + " bytes");
    if (l.size() < 3 || !digit(l[0]) || !digit(l[1]) || !digit(l[2]))
        // (append, not "\"" + ...: g++ 12 -O2 false -Wrestrict, GCC bug 105329)
        fail(
            std::string(1, '"').append(excerpt(l)).append("\" does not start with a 3-digit code"));
    int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (code < 200 || code > 599) fail("reply code " + std::to_string(code) + " out of range");
    bool last = true;
    if (l.size() > 3) {
        if (l[3] == '-')
            last = false;
        else if (l[3] != ' ')
            fail("\"" + excerpt(l) + "\": no space or '-' after the code");
    }
    if (!current_.lines.empty() && code != current_.code)
        fail("continuation line with code " + std::to_string(code) + " in a " +
             std::to_string(current_.code) + " reply");
    if (current_.lines.size() >= limits_.max_lines)
        fail("more than " + std::to_string(limits_.max_lines) + " lines in one reply");
    std::string text(l.size() > 4 ? l.substr(4) : std::string_view{});
    for (char& c : text) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u == '\t')
            c = ' ';
        else if (u < 0x20 || u == 0x7f)
            c = '?';
    }
    if (current_.lines.empty()) {
        current_.code = code;
        std::string enh = parse_enhanced_code(text);
        if (!enh.empty() && enh[0] == l[0]) current_.enhanced = enh;
    }
    current_.lines.push_back(std::move(text));
    if (last) {
        ready_.push_back(std::move(current_));
        current_ = SmtpReply{};
    }
}

std::optional<SmtpReply> ReplyParser::next() {
    if (ready_.empty()) return std::nullopt;
    SmtpReply r = std::move(ready_.front());
    ready_.pop_front();
    return r;
}

}  // namespace o365
