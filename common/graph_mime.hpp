// graph_mime: the message as Microsoft Graph takes it, from the transport's
// spool (docs/design.md section "Graph delivery"). The spool holds the SMTP
// wire form (CRLF lines, dot-stuffed, the null-sender From rewrite applied);
// Graph wants the same message WITHOUT dot-stuffing, base64-encoded (no line
// breaks) as the body of sendMail / draft creation.
//
// Contract:
// - Undotter: incremental, any fragmentation gives the same output: removes
//   the one '.' that dot-stuffing put at the start of every line that starts
//   with '.'. Input must be wire form (every line ends in CRLF).
// - scan_mime(): one pass over the wire chunks: the undotted size and the To,
//   Cc and Bcc addresses of the header section (fields unfolded; names
//   case-insensitive; several fields of a name add up). A header section over
//   kMaxHeaderSection bytes is not read further (complete = false). Memory:
//   bounded by that limit.
// - Base64Body: a BodyReader (http.hpp) giving base64 (RFC 4648, padded, no
//   line breaks) of the undotted message, encoded on the fly from the chunks:
//   length() bytes in all. No full copy of the message in memory.
// Failure: whatever the source throws (Error temporary from the spool) passes
// through. Not thread-safe: one object per delivery.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "graph_envelope.hpp"
#include "smtp_client.hpp"

namespace o365 {

class Undotter {
  public:
    void feed(std::string_view wire, std::string& out);

  private:
    bool bol_ = true;  // the next byte starts a line
};

struct MimeScan {
    std::uint64_t size = 0;  // undotted bytes
    HeaderRecipients recipients;
};

inline constexpr std::size_t kMaxHeaderSection = 1 << 20;

// Reads `wire` to its end.
MimeScan scan_mime(MessageSource& wire);

// The base64 length of n bytes.
inline std::uint64_t base64_length(std::uint64_t n) {
    return (n + 2) / 3 * 4;
}

class Base64Body {
  public:
    // `wire` positioned at the start; `size`: its undotted size (scan_mime()).
    Base64Body(MessageSource& wire, std::uint64_t size) : wire_(wire), size_(size) {}

    std::uint64_t length() const { return base64_length(size_); }

    // Up to `max` bytes of base64 into `buf`; 0 at the end.
    std::size_t read(char* buf, std::size_t max);

  private:
    bool fill();  // more encoded bytes into out_; false at the end

    MessageSource& wire_;
    std::uint64_t size_;
    Undotter undot_;
    std::string raw_;  // undotted bytes not encoded yet (fewer than 3 at a chunk's end)
    std::string out_;  // encoded bytes not handed out yet
    std::size_t out_pos_ = 0;
    bool done_ = false;
};

}  // namespace o365
