// smtp_reply: SMTP server replies (RFC 5321 section 4.2) and an incremental
// parser for them.
//
// Contract: ReplyParser::feed() accepts the bytes read from the server in any
// fragmentation (one byte at a time too); every complete reply (continuation
// lines "NNN-text", final line "NNN text" or "NNN") becomes one SmtpReply,
// available in order from next(). Lines end with CRLF; a bare LF is accepted
// too (as Postfix's client does). The enhanced status code (RFC 3463,
// "class.subject.detail") is taken from the start of the first line's text
// when present and its class agrees with the reply code; servers that do not
// advertise ENHANCEDSTATUSCODES practically never start a text that way, and
// Postfix's own client parses it the same way regardless of the EHLO keyword.
// Control characters in the text are replaced by '?' so that a reply can be
// logged and printed for Postfix as one line.
//
// Failure: malformed input (no 3-digit code, code outside 200-599, a
// continuation line with another code, a line longer than Limits::max_line
// bytes, more than Limits::max_lines lines in one reply) throws o365::Error
// (temporary) "malformed reply from server: ..."; after that the parser stays
// failed and every later feed() throws the same error.
//
// Thread-safety: none (one parser per connection).
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace o365 {

struct SmtpReply {
    int code = 0;                    // 200..599
    std::string enhanced;            // "5.7.3", or "" when the server sent none
    std::vector<std::string> lines;  // the text of each line after "NNN-"/"NNN "

    // The whole reply on one line: "550 5.1.1 first line text second line text".
    // A repeat of the enhanced code at the start of later lines is left out.
    std::string text() const;

    bool positive() const { return code >= 200 && code < 400; }
    bool transient() const { return code >= 400 && code < 500; }
    bool permanent() const { return code >= 500 && code < 600; }
};

// Parses "N.N.N" (class 2, 4 or 5; subject and detail of 1-3 digits) at the
// start of `text`, followed by a space or the end. Returns the code or "".
std::string parse_enhanced_code(std::string_view text);

class ReplyParser {
  public:
    struct Limits {
        std::size_t max_line = 4096;  // bytes per line, CRLF excluded
        std::size_t max_lines = 200;  // lines per reply
    };

    ReplyParser() = default;
    explicit ReplyParser(Limits limits) : limits_(limits) {}

    // Consumes all of `bytes`. Throws Error (temporary) on malformed input.
    void feed(std::string_view bytes);

    // The next complete reply, in the order received; nullopt when none is complete.
    std::optional<SmtpReply> next();

    // True when bytes of an incomplete reply are buffered (STARTTLS: the server
    // must not send anything after its 220 before the handshake).
    bool has_partial() const { return !line_.empty() || !current_.lines.empty(); }
    // Complete replies not taken yet.
    std::size_t pending() const { return ready_.size(); }

  private:
    void end_of_line();
    [[noreturn]] void fail(const std::string& why);

    Limits limits_;
    std::string line_;   // bytes of the current line (CR stripped at end)
    SmtpReply current_;  // lines of the reply being read
    std::deque<SmtpReply> ready_;
    std::string failed_;  // non-empty after a malformed input
};

}  // namespace o365
