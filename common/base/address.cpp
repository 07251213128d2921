#include "address.hpp"

#include <utility>

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

namespace {

bool is_wsp(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// An addr-spec without its obsolete white space: the white space next to '.'
// or '@' and at the ends goes; any other run (outside quoted strings and
// domain literals) stays as one space, so that "John Doe jd@x" is still
// recognisably not an address.
std::string tighten_addr_spec(std::string_view s) {
    std::string out;
    bool quoted = false, literal = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (quoted || literal) {
            out += c;
            if (c == '\\' && i + 1 < s.size())
                out += s[++i];
            else if ((quoted && c == '"') || (literal && c == ']'))
                quoted = literal = false;
            continue;
        }
        if (is_wsp(c)) {
            std::size_t j = i;
            while (j < s.size() && is_wsp(s[j]))
                ++j;
            bool drop = out.empty() || j == s.size() || out.back() == '.' || out.back() == '@' ||
                        s[j] == '.' || s[j] == '@';
            if (!drop) out += ' ';
            i = j - 1;
            continue;
        }
        if (c == '"') quoted = true;
        if (c == '[') literal = true;
        out += c;
    }
    return out;
}

// True when s has an '@' outside quoted strings: then it is no group's display
// name (a phrase), and a ':' after it makes the element malformed.
bool has_unquoted_at(std::string_view s) {
    bool quoted = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (quoted && s[i] == '\\')
            ++i;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && s[i] == '@')
            return true;
    }
    return false;
}

// "<@a.example,@b.example:user@x>" (obs-route) -> "user@x".
std::string_view strip_route(std::string_view s) {
    std::size_t b = 0;
    while (b < s.size() && is_wsp(s[b]))
        ++b;
    if (b == s.size() || s[b] != '@') return s;
    std::size_t colon = s.find(':', b);
    return colon == std::string_view::npos ? s : s.substr(colon + 1);
}

// The scanner of an address list: one pass, one element (mailbox) at a time.
class ListScanner {
  public:
    explicit ListScanner(std::string_view v) : v_(v) {}

    std::vector<HeaderMailbox> run() {
        for (i_ = 0; i_ < v_.size(); ++i_)
            step(v_[i_]);
        end_element(quoted_ || literal_ || depth_ > 0 || in_angle_);
        return std::move(out_);
    }

    std::string first_comment() const { return first_comment_; }

  private:
    struct Element {
        std::string raw;           // as written
        std::string plain;         // outside comments and the angle address
        std::string angle;         // inside <...>, comments removed
        std::size_t angle_at = 0;  // raw.size() at the '<'
        std::string after_angle;   // plain text after the '>'
        std::string comment;       // the first comment's text
        bool angle_seen = false;
        bool comment_seen = false;
    };

    // Appends c to the buffers the current state writes to.
    void put(char c) {
        e_.raw += c;
        if (depth_ > 0) {
            if (capturing_) e_.comment += c;
            if (capturing_all_) first_comment_ += c;
            return;
        }
        if (in_angle_) {
            e_.angle += c;
            return;
        }
        e_.plain += c;
        if (e_.angle_seen) e_.after_angle += c;
    }

    void step(char c) {
        bool escapable = quoted_ || literal_ || depth_ > 0;
        if (c == '\\' && escapable && i_ + 1 < v_.size()) {
            if (depth_ > 0) {  // a comment's text is kept unescaped
                e_.raw += c;
                put(v_[++i_]);
                return;
            }
            put(c);
            put(v_[++i_]);
            return;
        }
        if (quoted_) {
            put(c);
            if (c == '"') quoted_ = false;
            return;
        }
        if (literal_) {
            put(c);
            if (c == ']') literal_ = false;
            return;
        }
        if (c == '(') {
            if (depth_ > 0) {
                put(c);
            } else {
                e_.raw += c;
                capturing_ = !e_.comment_seen;
                capturing_all_ = !comment_found_;
                e_.comment_seen = comment_found_ = true;
            }
            ++depth_;
            return;
        }
        if (depth_ > 0) {
            if (c == ')' && --depth_ == 0) {
                e_.raw += c;
                capturing_ = capturing_all_ = false;
                return;
            }
            put(c);
            return;
        }
        if (c == '"') quoted_ = true;
        if (c == '[') literal_ = true;
        if (in_angle_) {
            if (c == '>') {
                in_angle_ = false;
                e_.raw += c;
                return;
            }
            put(c);
            return;
        }
        if (c == '<' && !e_.angle_seen) {
            e_.angle_at = e_.raw.size();
            e_.raw += c;
            e_.angle_seen = in_angle_ = true;
            return;
        }
        if (c == ',' || c == ';') {
            end_element(false);
            if (c == ';') in_group_ = false;
            return;
        }
        if (c == ':' && !in_group_ && !e_.angle_seen && !has_unquoted_at(e_.plain)) {
            in_group_ = true;  // "Display Name:" of a group: not a mailbox
            e_ = Element{};
            return;
        }
        put(c);
    }

    void end_element(bool unterminated) {
        HeaderMailbox m;
        m.comment = trim_ws(e_.comment);
        bool junk_after_angle = e_.angle_seen && !trim_ws(e_.after_angle).empty();
        if (unterminated || junk_after_angle) {
            m.address = trim_ws(e_.raw);  // malformed: as written, so that it fails any check
        } else if (e_.angle_seen) {
            m.address = tighten_addr_spec(strip_route(e_.angle));
            m.display = trim_ws(std::string_view(e_.raw).substr(0, e_.angle_at));
        } else {
            m.address = tighten_addr_spec(e_.plain);
        }
        bool empty_element = !e_.angle_seen && m.address.empty();  // obs-mbox-list, comments only
        if (!empty_element) out_.push_back(std::move(m));
        e_ = Element{};
    }

    std::string_view v_;
    std::size_t i_ = 0;
    Element e_;
    int depth_ = 0;
    bool quoted_ = false;
    bool literal_ = false;
    bool in_angle_ = false;
    bool in_group_ = false;
    bool capturing_ = false;      // inside the element's first comment
    bool capturing_all_ = false;  // inside the value's first comment
    bool comment_found_ = false;
    std::string first_comment_;
    std::vector<HeaderMailbox> out_;
};

}  // namespace

std::vector<HeaderMailbox> header_mailboxes(std::string_view value) {
    return ListScanner(value).run();
}

std::vector<std::string> header_addresses(std::string_view value) {
    std::vector<std::string> r;
    for (HeaderMailbox& m : header_mailboxes(value))
        r.push_back(std::move(m.address));
    return r;
}

std::string header_comment(std::string_view value) {
    ListScanner s(value);
    s.run();
    return trim_ws(s.first_comment());
}

}  // namespace o365
