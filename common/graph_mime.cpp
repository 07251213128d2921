#include "graph_mime.hpp"

#include "address.hpp"
#include "base64.hpp"

namespace o365 {

void Undotter::feed(std::string_view wire, std::string& out) {
    out.reserve(out.size() + wire.size());
    for (char c : wire) {
        if (bol_ && c == '.') {
            bol_ = false;  // the stuffed dot: dropped; the next byte is content
            continue;
        }
        bol_ = c == '\n';
        out += c;
    }
}

namespace {

// Collects the header section line by line and the To/Cc/Bcc fields of it.
class HeaderScanner {
  public:
    explicit HeaderScanner(HeaderRecipients& r) : r_(r) {}

    // Undotted bytes; stops looking at the end of the header section.
    void feed(std::string_view bytes) {
        for (char c : bytes) {
            if (done_) return;
            line_ += c;
            if (++seen_ > kMaxHeaderSection) {
                r_.complete = false;
                done_ = true;
                return;
            }
            if (c == '\n') line_done();
        }
    }
    void finish() {
        if (!done_) {
            if (!line_.empty()) line_done();
            field_done();
        }
    }

  private:
    void line_done() {
        std::string line = line_;
        line_.clear();
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
            line.pop_back();
        if (line.empty()) {  // the end of the header section
            field_done();
            done_ = true;
            return;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            field_ += line;  // a folded continuation
            return;
        }
        field_done();
        field_ = line;
    }

    void field_done() {
        std::string f = std::move(field_);
        field_.clear();
        auto colon = f.find(':');
        if (colon == std::string::npos) return;
        std::string name = lower_ascii(f.substr(0, colon));
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
            name.pop_back();
        std::vector<std::string>* list = name == "to"    ? &r_.to
                                         : name == "cc"  ? &r_.cc
                                         : name == "bcc" ? &r_.bcc
                                                         : nullptr;
        if (!list) return;
        for (auto& a : header_addresses(std::string_view(f).substr(colon + 1)))
            if (!a.empty()) list->push_back(std::move(a));
    }

    HeaderRecipients& r_;
    std::string line_, field_;
    std::size_t seen_ = 0;
    bool done_ = false;
};

}  // namespace

MimeScan scan_mime(MessageSource& wire) {
    MimeScan scan;
    HeaderScanner headers(scan.recipients);
    Undotter undot;
    std::string out;
    for (;;) {
        std::string_view chunk = wire.next_chunk();
        if (chunk.empty()) break;
        out.clear();
        undot.feed(chunk, out);
        scan.size += out.size();
        headers.feed(out);
    }
    headers.finish();
    return scan;
}

bool Base64Body::fill() {
    out_.clear();
    out_pos_ = 0;
    while (out_.empty()) {
        if (done_) return false;
        std::string_view chunk = wire_.next_chunk();
        if (chunk.empty()) {
            done_ = true;
            if (raw_.empty()) return false;
            out_ = base64_encode(raw_);  // the last 1 or 2 bytes, padded
            raw_.clear();
            return true;
        }
        undot_.feed(chunk, raw_);
        std::size_t whole = raw_.size() / 3 * 3;
        if (whole == 0) continue;
        out_ = base64_encode(std::string_view(raw_).substr(0, whole));
        raw_.erase(0, whole);
    }
    return true;
}

std::size_t Base64Body::read(char* buf, std::size_t max) {
    if (out_pos_ == out_.size() && !fill()) return 0;
    std::size_t n = std::min(max, out_.size() - out_pos_);
    out_.copy(buf, n, out_pos_);
    out_pos_ += n;
    return n;
}

}  // namespace o365
