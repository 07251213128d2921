// Byte-exact tests of transport/message_stream: line ends, dot-stuffing, lone
// CR/LF, final newline, 8-bit detection, long lines, every chunk boundary,
// header From rewriting, and the spool.
#include <fcntl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <random>

#include "message_stream.hpp"

using namespace o365;

namespace {

std::string encode(std::string_view in) {
    WireEncoder e;
    std::string out;
    e.encode(in, out);
    e.finish(out);
    return out;
}

// The input cut at every position into two pieces, and fed byte by byte.
void check_all_splits(std::string_view in, const std::string& expected) {
    BOOST_TEST(encode(in) == expected);
    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
        WireEncoder e;
        std::string out;
        e.encode(in.substr(0, cut), out);
        e.encode(in.substr(cut), out);
        e.finish(out);
        BOOST_TEST(out == expected, "cut at " << cut);
    }
    WireEncoder e;
    std::string out;
    for (char c : in)
        e.encode(std::string_view(&c, 1), out);
    e.finish(out);
    BOOST_TEST(out == expected);
}

// Spools `input` (from a temporary file) and returns the streamed bytes.
std::string spool(const std::string& input, HeaderRewriter* rw = nullptr,
                  MessageSpool** keep = nullptr) {
    char tmpl[] = "/tmp/o365-msg-input.XXXXXX";
    int fd = ::mkstemp(tmpl);
    BOOST_REQUIRE(fd >= 0);
    ::unlink(tmpl);
    BOOST_REQUIRE(::write(fd, input.data(), input.size()) == static_cast<ssize_t>(input.size()));
    ::lseek(fd, 0, SEEK_SET);
    auto* s = new MessageSpool(fd, "", rw);
    ::close(fd);
    std::string out;
    for (;;) {
        auto c = s->next_chunk();
        if (c.empty()) break;
        BOOST_TEST(c.size() <= MessageSpool::kChunk);
        out.append(c);
    }
    BOOST_TEST(s->size() == out.size());
    if (keep)
        *keep = s;
    else
        delete s;
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(message_stream)

BOOST_AUTO_TEST_CASE(table) {
    struct Row {
        std::string in, out;
    };
    const Row rows[] = {
        {"", ""},
        {"a", "a\r\n"},                        // no final newline
        {"a\n", "a\r\n"},                      // lone LF
        {"a\r\n", "a\r\n"},                    // CRLF stays
        {"a\nb\r\nc", "a\r\nb\r\nc\r\n"},      // mixed
        {"a\rb\n", "a\rb\r\n"},                // lone CR is content
        {"a\r", "a\r\r\n"},                    // lone CR at the end
        {"\r", "\r\r\n"},                      //
        {"a\r\r\n", "a\r\r\n"},                // CR then CRLF
        {"\n\n", "\r\n\r\n"},                  // empty lines
        {".\n", "..\r\n"},                     // a lone dot line
        {".", "..\r\n"},                       // a dot without newline
        {"..\n", "...\r\n"},                   //
        {"a\n.\nb\n", "a\r\n..\r\nb\r\n"},     // the end-of-data sequence
        {"a\r\n.\r\nb", "a\r\n..\r\nb\r\n"},   //
        {".a\n", "..a\r\n"},                   //
        {"a.\n", "a.\r\n"},                    // not at line start
        {"a\r.\n", "a\r.\r\n"},                // after a lone CR: not a line start
        {"\r.\r\n", "\r.\r\n"},                //
        {"x\n\r\n.\n", "x\r\n\r\n..\r\n"},     //
        {" .\n", " .\r\n"},                    //
        {"caf\xc3\xa9\n", "caf\xc3\xa9\r\n"},  // 8-bit passes unchanged
        {std::string("a\0b\n", 4), std::string("a\0b\r\n", 5)},  // NUL is content
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT("input \"" << r.in << "\"") {
            check_all_splits(r.in, r.out);
        }
    }
}

BOOST_AUTO_TEST_CASE(no_input_can_end_data_early) {
    // Random inputs over the dangerous alphabet: the output never contains
    // CRLF "." CRLF, always ends with CRLF, and has no bare LF.
    std::mt19937 rng(12345);
    const char alphabet[] = {'\r', '\n', '.', 'a'};
    for (int n = 0; n < 3000; ++n) {
        std::string in;
        std::size_t len = rng() % 24;
        for (std::size_t i = 0; i < len; ++i)
            in += alphabet[rng() % 4];
        std::string out = "\r\n" + encode(in);  // DATA's own CRLF precedes the body
        BOOST_TEST(out.find("\r\n.\r\n") == std::string::npos, "input " << n);
        BOOST_TEST(out.compare(out.size() - 2, 2, "\r\n") == 0);
        for (std::size_t i = 0; i < out.size(); ++i)
            if (out[i] == '\n') BOOST_TEST((i > 0 && out[i - 1] == '\r'));
    }
}

BOOST_AUTO_TEST_CASE(eight_bit_detection) {
    WireEncoder e;
    std::string out;
    e.encode("plain ascii\n", out);
    BOOST_TEST(!e.eight_bit());
    e.encode("\x80", out);
    BOOST_TEST(e.eight_bit());
    WireEncoder f;
    f.encode(std::string("\x7f\x01\t", 3), out);
    BOOST_TEST(!f.eight_bit());
}

BOOST_AUTO_TEST_CASE(very_long_lines_and_spool_chunks) {
    // A 1 MiB line and a dot line right after a chunk boundary of the reader.
    std::string in(MessageSpool::kChunk - 1, 'x');
    in += "\n.dot\n";
    in += std::string(1 << 20, 'y');
    std::string expected(MessageSpool::kChunk - 1, 'x');
    expected += "\r\n..dot\r\n";
    expected += std::string(1 << 20, 'y');
    expected += "\r\n";
    MessageSpool* s = nullptr;
    BOOST_TEST(spool(in, nullptr, &s) == expected);
    BOOST_TEST(!s->eight_bit());
    BOOST_TEST(s->size() == expected.size());
    // rewind streams the same bytes again
    s->rewind();
    std::string again;
    for (auto c = s->next_chunk(); !c.empty(); c = s->next_chunk())
        again.append(c);
    BOOST_TEST(again == expected);
    delete s;
    // CR and LF of one CRLF on both sides of the reader's 64 KiB boundary
    std::string in2(MessageSpool::kChunk - 1, 'z');
    in2 += "\r\n.\r\n";
    std::string out2 = spool(in2);
    BOOST_TEST(out2 == std::string(MessageSpool::kChunk - 1, 'z') + "\r\n..\r\n");
}

BOOST_AUTO_TEST_CASE(spool_of_empty_input_and_8bit) {
    BOOST_TEST(spool("") == "");
    MessageSpool* s = nullptr;
    BOOST_TEST(spool("Subject: \xe2\x82\xac\n\nx", nullptr, &s) ==
               "Subject: \xe2\x82\xac\r\n\r\nx\r\n");
    BOOST_TEST(s->eight_bit());
    delete s;
}

BOOST_AUTO_TEST_CASE(spool_read_error_is_temporary) {
    // read(2) on a directory fails with EISDIR.
    int dir = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    BOOST_REQUIRE(dir >= 0);
    try {
        MessageSpool s(dir, "");
        ::close(dir);
        BOOST_FAIL("no error");
    } catch (const Error& e) {
        ::close(dir);
        BOOST_TEST((e.error_class() == ErrorClass::temporary));
        BOOST_TEST(std::string(e.what()).find("cannot read the message") != std::string::npos);
    }
    try {
        MessageSpool s(0, "/nonexistent-dir-o365");
        BOOST_FAIL("no error");
    } catch (const Error& e) {
        BOOST_TEST(std::string(e.what()).find("cannot create a temporary file") !=
                   std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(header_from_rewrite) {
    auto cb = [](std::string_view v) -> std::optional<std::string> {
        if (v.find("MAILER-DAEMON") == std::string_view::npos) return std::nullopt;
        return "Mail Delivery System <noreply@contoso.com>";
    };
    struct Row {
        std::string in, out;
        int rewritten;
    };
    const Row rows[] = {
        {"From: MAILER-DAEMON@mx.contoso.com (Mail Delivery System)\r\nTo: a@b\r\n\r\nFrom: "
         "MAILER-DAEMON in body\r\n",
         "From: Mail Delivery System <noreply@contoso.com>\r\nTo: a@b\r\n\r\nFrom: MAILER-DAEMON "
         "in body\r\n",
         1},
        // folded, other case, space before the colon
        {"Subject: x\r\nfrom : \r\n MAILER-DAEMON@x\r\n\tfolded\r\nTo: y\r\n\r\nbody\r\n",
         "Subject: x\r\nFrom: Mail Delivery System <noreply@contoso.com>\r\nTo: y\r\n\r\nbody\r\n",
         1},
        // last header before the body, and a message without a body
        {"To: y\r\nFrom: MAILER-DAEMON\r\n",
         "To: y\r\nFrom: Mail Delivery System <noreply@contoso.com>\r\n", 1},
        // kept when the callback says so
        {"From: Alice <alice@contoso.com>\r\n\r\nx\r\n",
         "From: Alice <alice@contoso.com>\r\n\r\nx\r\n", 0},
        // not the From field
        {"From-X: MAILER-DAEMON\r\nReply-From: MAILER-DAEMON\r\n\r\n",
         "From-X: MAILER-DAEMON\r\nReply-From: MAILER-DAEMON\r\n\r\n", 0},
        // no header section at all
        {"\r\nFrom: MAILER-DAEMON\r\n", "\r\nFrom: MAILER-DAEMON\r\n", 0},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.in) {
            for (std::size_t cut = 0; cut <= r.in.size(); ++cut) {
                HeaderRewriter rw("From", cb);
                std::string out;
                rw.feed(std::string_view(r.in).substr(0, cut), out);
                rw.feed(std::string_view(r.in).substr(cut), out);
                rw.finish(out);
                BOOST_TEST(out == r.out, "cut at " << cut);
                BOOST_TEST(rw.rewritten() == r.rewritten);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(header_rewrite_bounded_memory) {
    int calls = 0;
    auto cb = [&](std::string_view) -> std::optional<std::string> {
        ++calls;
        return "X";
    };
    // A From field longer than the limit, in one line and folded: unchanged.
    std::string longline = "From: " + std::string(HeaderRewriter::kMaxField + 10, 'a') + "\r\n";
    std::string folded = "From: a\r\n";
    for (int i = 0; i < 5000; ++i)
        folded += " " + std::string(20, 'b') + "\r\n";
    for (const std::string& field : {longline, folded}) {
        std::string in = field + "To: z\r\n\r\nbody\r\n";
        for (std::size_t step : {1u, 7u, 4096u, 1u << 20}) {
            HeaderRewriter rw("From", cb);
            std::string out;
            for (std::size_t i = 0; i < in.size(); i += step)
                rw.feed(std::string_view(in).substr(i, step), out);
            rw.finish(out);
            BOOST_TEST(out == in);
        }
    }
    BOOST_TEST(calls == 0);
    // The spool applies the rewriter to LF input.
    HeaderRewriter rw("From",
                      [](std::string_view) { return std::optional<std::string>("N <n@x>"); });
    BOOST_TEST(spool("From: MAILER-DAEMON\n\n.x\n", &rw) == "From: N <n@x>\r\n\r\n..x\r\n");
}

BOOST_AUTO_TEST_SUITE_END()
