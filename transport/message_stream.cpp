#include "message_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "error.hpp"

namespace o365 {

void WireEncoder::encode(std::string_view in, std::string& out) {
    out.reserve(out.size() + in.size() + in.size() / 32 + 8);
    std::size_t i = 0;
    const std::size_t n = in.size();
    while (i < n) {
        char c = in[i];
        if (cr_) {
            cr_ = false;
            if (c == '\n') {
                out += "\r\n";
                bol_ = true;
                ++i;
                continue;
            }
            out += '\r';  // a lone CR is content
            bol_ = false;
        }
        if (c == '\r') {
            cr_ = true;
            ++i;
            continue;
        }
        if (c == '\n') {
            out += "\r\n";
            bol_ = true;
            ++i;
            continue;
        }
        if (bol_ && c == '.') out += '.';
        // The run of ordinary bytes up to the next CR or LF, appended at once.
        std::size_t j = i;
        unsigned char high = 0;
        while (j < n && in[j] != '\r' && in[j] != '\n') {
            high |= static_cast<unsigned char>(in[j]);
            ++j;
        }
        if (high & 0x80) eight_bit_ = true;
        out.append(in.data() + i, j - i);
        bol_ = false;
        i = j;
    }
}

void WireEncoder::finish(std::string& out) {
    if (cr_) {
        out += '\r';
        cr_ = false;
        bol_ = false;
    }
    if (!bol_) {
        out += "\r\n";
        bol_ = true;
    }
}

HeaderRewriter::HeaderRewriter(std::string field_name, Callback cb,
                               std::optional<std::string> add_if_missing)
    : name_(std::move(field_name)),
      cb_(std::move(cb)),
      add_if_missing_(std::move(add_if_missing)) {}

namespace {

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

// True when `line` starts the field `name` ("Name" [WSP] ":").
bool starts_field(std::string_view line, std::string_view name) {
    std::size_t name_end = line.find_first_of(" \t:");
    return name_end != std::string_view::npos && iequal(line.substr(0, name_end), name) &&
           line.find_first_not_of(" \t", name_end) == line.find(':');
}

}  // namespace

void HeaderRewriter::add_missing(std::string& out) {
    if (seen_ || !add_if_missing_) return;
    out += name_ + ": " + *add_if_missing_ + "\r\n";
    ++rewritten_;
    seen_ = true;
}

void HeaderRewriter::flush_field(std::string& out) {
    if (field_.empty()) return;
    // "Name" [WSP] ":" value
    std::size_t colon = field_.find(':');
    std::size_t name_end = field_.find_first_of(" \t:");
    if (colon != std::string::npos && name_end != std::string::npos &&
        iequal(std::string_view(field_).substr(0, name_end), name_) &&
        field_.find_first_not_of(" \t", name_end) == colon) {
        // Unfold: drop every CRLF, keep the whitespace that follows.
        std::string value;
        std::string_view rest = std::string_view(field_).substr(colon + 1);
        for (std::size_t i = 0; i < rest.size(); ++i) {
            if (rest[i] == '\r' && i + 1 < rest.size() && rest[i + 1] == '\n') {
                ++i;
                continue;
            }
            value += rest[i];
        }
        if (auto nv = cb_(value)) {
            out += name_ + ":" + (nv->empty() || nv->front() == ' ' ? "" : " ") + *nv + "\r\n";
            ++rewritten_;
            field_.clear();
            return;
        }
    }
    out += field_;
    field_.clear();
}

void HeaderRewriter::line_done(std::string& out) {
    // line_ ends with CRLF
    bool continuation = !line_.empty() && (line_[0] == ' ' || line_[0] == '\t');
    if (line_ == "\r\n") {
        flush_field(out);
        passthrough_field_ = false;
        add_missing(out);
        out += line_;
        in_body_ = true;
        return;
    }
    if (continuation) {
        if (passthrough_field_) {
            out += line_;
        } else if (field_.size() + line_.size() > kMaxField) {
            out += field_;
            field_.clear();
            out += line_;
            passthrough_field_ = true;
        } else {
            field_ += line_;
        }
        return;
    }
    flush_field(out);
    passthrough_field_ = false;
    if (starts_field(line_, name_)) seen_ = true;
    if (line_.size() > kMaxField) {
        out += line_;
        passthrough_field_ = true;
    } else {
        field_ = line_;
    }
}

void HeaderRewriter::feed(std::string_view in, std::string& out) {
    while (!in.empty()) {
        if (in_body_) {
            out.append(in);
            return;
        }
        std::size_t nl = in.find('\n');
        std::size_t take = nl == std::string_view::npos ? in.size() : nl + 1;
        if (long_line_) {
            // the rest of a header line longer than the limit: passed through
            out.append(in.substr(0, take));
            in.remove_prefix(take);
            if (nl != std::string_view::npos) long_line_ = false;
            continue;
        }
        if (line_.size() + take > kMaxField) {
            // A header line longer than the limit: not rewritten, passed
            // through with the continuation lines that follow it.
            char first = line_.empty() ? in[0] : line_[0];
            bool continuation = first == ' ' || first == '\t';
            if (!continuation) {
                flush_field(out);
                if (starts_field(line_.empty() ? in.substr(0, take) : std::string_view(line_),
                                 name_))
                    seen_ = true;
            } else if (!passthrough_field_) {
                out += field_;  // the field became too long: sent unchanged
                field_.clear();
            }
            out += line_;
            line_.clear();
            passthrough_field_ = true;
            long_line_ = true;
            continue;
        }
        line_.append(in.substr(0, take));
        in.remove_prefix(take);
        if (nl != std::string_view::npos) {
            line_done(out);
            line_.clear();
        }
    }
}

void HeaderRewriter::finish(std::string& out) {
    if (!line_.empty()) {
        line_done(out);  // WireEncoder output always ends with CRLF; be safe anyway
        line_.clear();
    }
    flush_field(out);
    if (!in_body_) add_missing(out);  // a message of header fields only
}

MessageSpool::MessageSpool(int fd, const std::string& tmpdir, HeaderRewriter* rewriter) {
    std::string dir = tmpdir;
    if (dir.empty()) {
        const char* t = std::getenv("TMPDIR");
        dir = (t && *t) ? t : "/tmp";
    }
    file_.reset(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!file_) {
        std::string tmpl = dir + "/o365relay-msg.XXXXXX";
        int f = ::mkostemp(tmpl.data(), O_CLOEXEC);
        if (f < 0)
            throw Error(ErrorClass::temporary,
                        "cannot create a temporary file in " + dir + ": " + std::strerror(errno));
        ::unlink(tmpl.c_str());
        file_.reset(f);
    }
    WireEncoder enc;
    std::string in(kChunk, '\0');
    std::string wire, out;
    for (;;) {
        ssize_t n = ::read(fd, in.data(), in.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorClass::temporary,
                        std::string("cannot read the message: ") + std::strerror(errno));
        }
        if (n == 0) break;
        wire.clear();
        enc.encode(std::string_view(in.data(), static_cast<std::size_t>(n)), wire);
        if (rewriter) {
            out.clear();
            rewriter->feed(wire, out);
            write_out(out);
        } else {
            write_out(wire);
        }
    }
    wire.clear();
    enc.finish(wire);
    if (rewriter) {
        out.clear();
        rewriter->feed(wire, out);
        rewriter->finish(out);
        write_out(out);
    } else {
        write_out(wire);
    }
    eight_bit_ = enc.eight_bit();
}

void MessageSpool::write_out(std::string& buf) {
    std::string_view rest = buf;
    while (!rest.empty()) {
        ssize_t n = ::write(file_.get(), rest.data(), rest.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorClass::temporary,
                        std::string("cannot spool the message: ") + std::strerror(errno));
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    size_ += buf.size();
}

std::string_view MessageSpool::next_chunk() {
    chunk_.resize(kChunk);
    for (;;) {
        ssize_t n = ::pread(file_.get(), chunk_.data(), chunk_.size(), static_cast<off_t>(offset_));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorClass::temporary,
                        std::string("cannot read the spooled message: ") + std::strerror(errno));
        }
        offset_ += static_cast<std::uint64_t>(n);
        return std::string_view(chunk_.data(), static_cast<std::size_t>(n));
    }
}

void MessageSpool::rewind() {
    offset_ = 0;
}

}  // namespace o365
