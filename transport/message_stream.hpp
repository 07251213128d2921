// message_stream: the message from pipe(8)'s stdin in SMTP wire form, with
// memory use that does not grow with the message size.
//
// Contract:
// - WireEncoder: incremental, any fragmentation of the input gives the same
//   output. CRLF stays CRLF, a lone LF becomes CRLF, a lone CR is content (sent
//   as is). Dot-stuffing ('.' at the start of a line gets another '.') applies
//   to lines after that normalisation, so no input can end the DATA phase early
//   (the sequence CRLF "." CRLF never appears in the output). finish() gives a
//   last line without newline its CRLF; an empty input stays empty. It notes
//   whether any byte is >= 0x80 (8-bit content).
// - HeaderRewriter: rewrites one header field (e.g. From) of the header section
//   of the wire stream (up to the first empty line) through a callback that
//   gets the unfolded value and returns a new value or nullopt (keep). A field
//   longer than 64 KiB is passed through unchanged (memory stays bounded).
//   With `add_if_missing`, a header section without that field gets
//   "Name: <value>" CRLF at its end (before the empty line), so that a rule such
//   as the null-sender From (common/delivery/sender_rules.hpp) gives the same message
//   whether the milter or the transport applies it.
// - MessageSpool: reads a file descriptor to EOF through the encoder (and an
//   optional rewriter) into an anonymous temporary file (O_TMPFILE in the given
//   directory; unlinked mkstemp as a fallback), so that the exact wire size and
//   the presence of 8-bit bytes are known BEFORE MAIL FROM (SIZE=,
//   BODY=8BITMIME), and the body is then streamed from the file in 64 KiB
//   chunks (MessageSource). Memory use: a few 64 KiB buffers, whatever the size.
//   The temporary file disappears when the spool is destroyed or the process
//   exits. Failures (read error, disk full) throw Error (temporary) naming the
//   cause.
// Thread-safety: none; one object per delivery.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "smtp_client.hpp"
#include "unique_fd.hpp"

namespace o365 {

class WireEncoder {
  public:
    // Appends the wire form of `in` to `out`.
    void encode(std::string_view in, std::string& out);
    // Ends the message: a pending CR, and CRLF for a last line without newline.
    void finish(std::string& out);

    bool eight_bit() const { return eight_bit_; }

  private:
    bool bol_ = true;  // the next byte starts a line
    bool cr_ = false;  // a CR waits to see whether LF follows
    bool eight_bit_ = false;
};

class HeaderRewriter {
  public:
    // value: the unfolded field body after the colon (leading space kept);
    // returns the new body (written as "Name: <body>" CRLF) or nullopt.
    using Callback = std::function<std::optional<std::string>(std::string_view value)>;

    HeaderRewriter(std::string field_name, Callback cb,
                   std::optional<std::string> add_if_missing = std::nullopt);

    // Input and output are wire form (CRLF lines).
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

    int rewritten() const { return rewritten_; }

    static constexpr std::size_t kMaxField = 64 * 1024;

  private:
    void line_done(std::string& out);  // line_ holds one complete line with CRLF
    void flush_field(std::string& out);

    void add_missing(std::string& out);  // at the end of the header section

    std::string name_;
    Callback cb_;
    std::optional<std::string> add_if_missing_;
    bool seen_ = false;  // a field of that name was in the header section
    bool in_body_ = false;
    bool passthrough_field_ = false;  // current field too long: pass its lines through
    bool long_line_ = false;          // inside a line longer than kMaxField
    std::string line_;                // the current line (until CRLF)
    std::string field_;               // the current field, lines with CRLF
    int rewritten_ = 0;
};

class MessageSpool : public MessageSource {
  public:
    // Reads `fd` to EOF. tmpdir: where the anonymous file lives ("" -> $TMPDIR or /tmp).
    MessageSpool(int fd, const std::string& tmpdir, HeaderRewriter* rewriter = nullptr);

    std::uint64_t size() const { return size_; }  // wire bytes
    bool eight_bit() const { return eight_bit_; }

    std::string_view next_chunk() override;
    void rewind();  // stream from the start again

    static constexpr std::size_t kChunk = 64 * 1024;

  private:
    void write_out(std::string& buf);

    UniqueFd file_;
    std::uint64_t size_ = 0;
    bool eight_bit_ = false;
    std::uint64_t offset_ = 0;
    std::string chunk_;
};

}  // namespace o365
