// The Microsoft Graph units: the error JSON, the envelope rule, the message as
// Graph takes it (undotted, base64 on the fly), the size rule, the throttle
// file and the concurrency slots.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base64.hpp"
#include "config.hpp"
#include "deadline.hpp"
#include "graph_client.hpp"
#include "graph_envelope.hpp"
#include "graph_error.hpp"
#include "graph_limits.hpp"
#include "graph_mime.hpp"
#include "graph_throttle.hpp"

using namespace o365;
namespace fs = std::filesystem;

namespace {

// A message source handing out `text` in pieces of `step` bytes.
class Chunks : public MessageSource {
  public:
    Chunks(std::string text, std::size_t step) : text_(std::move(text)), step_(step) {}
    std::string_view next_chunk() override {
        std::string_view v = std::string_view(text_).substr(std::min(pos_, text_.size()), step_);
        pos_ += v.size();
        return v;
    }
    void rewind() { pos_ = 0; }

  private:
    std::string text_;
    std::size_t step_;
    std::size_t pos_ = 0;
};

std::string read_all(Base64Body& b, std::size_t max) {
    std::string out;
    std::vector<char> buf(max);
    for (;;) {
        std::size_t n = b.read(buf.data(), buf.size());
        if (n == 0) return out;
        out.append(buf.data(), n);
    }
}

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("o365-graph-test-" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(graph)

BOOST_AUTO_TEST_CASE(error_json) {
    struct Row {
        std::string body;
        const char* code;
        const char* message;
    };
    const Row rows[] = {
        {R"({"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again.","innerError":{"date":"2026-01-01T00:00:00"}}})",
         "ErrorAccessDenied", "Access is denied. Check credentials and try again."},
        {R"({"error":{"code":"Bad\r\nCode<x>","message":"two\r\nlines\t and   spaces"}})",
         "BadCodex", "two lines and spaces"},
        {R"({"error":{"code":42,"message":["x"]}})", "", ""},
        {R"({"error":"just text"})", "", "{\"error\":\"just text\"}"},
        {"<html><body>502 Bad Gateway</body></html>", "",
         "<html><body>502 Bad Gateway</body></html>"},
        {"", "", ""},
        {std::string("\0\x01\xff", 3), "", "\xff"},
    };
    for (const auto& r : rows) {
        BOOST_TEST_CONTEXT(r.body) {
            GraphError e = parse_graph_error(r.body);
            BOOST_TEST(e.code == r.code);
            BOOST_TEST(e.message == r.message);
        }
    }
    // Bounded, one line.
    GraphError big = parse_graph_error(R"({"error":{"code":")" + std::string(500, 'A') +
                                       R"(","message":")" + std::string(5000, 'm') + "\"}}");
    BOOST_TEST(big.code.size() == 100u);
    BOOST_TEST(big.message.size() == 300u);
    BOOST_TEST(big.message.substr(297) == "...");
}

BOOST_AUTO_TEST_CASE(envelope_rule) {
    using V = std::vector<std::string>;
    struct Row {
        V envelope;
        HeaderRecipients headers;
        bool send_mail;
        V to, cc, bcc;
    };
    const Row rows[] = {
        // the headers name exactly the envelope (case-insensitive): sendMail
        {{"a@x.org", "B@x.org"},
         {{"A@X.org"}, {"b@x.org"}, {}},
         true,
         {"a@x.org"},
         {"B@x.org"},
         {}},
        {{"a@x.org", "c@x.org"},
         {{"a@x.org"}, {}, {"c@x.org"}},
         true,
         {"a@x.org"},
         {},
         {"c@x.org"}},
        // a Bcc-only recipient of this delivery, To of another one: draft
        {{"c@x.org"}, {{"a@x.org"}, {}, {}}, false, {}, {}, {"c@x.org"}},
        // a header recipient who is not an envelope recipient: draft, left out
        {{"a@x.org"}, {{"a@x.org", "other@y.org"}, {"cc@y.org"}, {}}, false, {"a@x.org"}, {}, {}},
        // To wins over Cc; duplicates once
        {{"a@x.org", "b@x.org", "A@x.org"},
         {{"a@x.org"}, {"a@x.org", "b@x.org", "z@y.org"}, {}},
         false,
         {"a@x.org"},
         {"b@x.org"},
         {}},
        // no recipient headers at all
        {{"a@x.org"}, {{}, {}, {}}, false, {}, {}, {"a@x.org"}},
        // headers equal but not read to their end: only the draft route is safe
        {{"a@x.org"}, {{"a@x.org"}, {}, {}, false}, false, {"a@x.org"}, {}, {}},
    };
    for (const auto& r : rows) {
        GraphRoute g = plan_route(r.envelope, r.headers);
        BOOST_TEST(g.send_mail == r.send_mail);
        BOOST_TEST(g.to == r.to, boost::test_tools::per_element());
        BOOST_TEST(g.cc == r.cc, boost::test_tools::per_element());
        BOOST_TEST(g.bcc == r.bcc, boost::test_tools::per_element());
    }
}

BOOST_AUTO_TEST_CASE(undotter_any_fragmentation) {
    // Wire form: every line starting with '.' got one more.
    const std::string wire = "..a\r\n...\r\nb.c\r\n..\r\n.\r\nx\r\n";
    const std::string plain = ".a\r\n..\r\nb.c\r\n.\r\n\r\nx\r\n";
    for (std::size_t step = 1; step <= wire.size(); ++step) {
        Undotter u;
        std::string out;
        for (std::size_t i = 0; i < wire.size(); i += step)
            u.feed(std::string_view(wire).substr(i, step), out);
        BOOST_TEST(out == plain, "step " << step);
    }
}

BOOST_AUTO_TEST_CASE(scan_and_base64_body) {
    const std::string wire =
        "From: App <app@contoso.com>\r\n"
        "To: \"Doe, John\" <john@x.org>,\r\n"
        " jane@x.org\r\n"
        "CC: boss@x.org\r\n"
        "bcc: hidden@y.org\r\n"
        "Subject: dots\r\n"
        "\r\n"
        "..leading dot\r\n"
        "To: not-a-header@z.org\r\n";
    const std::string plain =
        "From: App <app@contoso.com>\r\n"
        "To: \"Doe, John\" <john@x.org>,\r\n"
        " jane@x.org\r\n"
        "CC: boss@x.org\r\n"
        "bcc: hidden@y.org\r\n"
        "Subject: dots\r\n"
        "\r\n"
        ".leading dot\r\n"
        "To: not-a-header@z.org\r\n";
    for (std::size_t step : {1u, 2u, 3u, 5u, 7u, 64u, 4096u}) {
        BOOST_TEST_CONTEXT("step " << step) {
            Chunks src(wire, step);
            MimeScan scan = scan_mime(src);
            BOOST_TEST(scan.size == plain.size());
            BOOST_TEST(scan.recipients.complete);
            BOOST_TEST(scan.recipients.to == (std::vector<std::string>{"john@x.org", "jane@x.org"}),
                       boost::test_tools::per_element());
            BOOST_TEST(scan.recipients.cc == std::vector<std::string>{"boss@x.org"},
                       boost::test_tools::per_element());
            BOOST_TEST(scan.recipients.bcc == std::vector<std::string>{"hidden@y.org"},
                       boost::test_tools::per_element());
            for (std::size_t max : {1u, 3u, 4u, 5u, 1000u}) {
                src.rewind();
                Base64Body body(src, scan.size);
                std::string b64 = read_all(body, max);
                BOOST_TEST(b64.size() == body.length());
                BOOST_TEST(b64 == base64_encode(plain));
                BOOST_TEST(base64_decode(b64) == plain);
            }
        }
    }
    // Lengths 0..5: padding.
    for (std::size_t n = 0; n < 6; ++n) {
        std::string msg(n, 'q');
        Chunks src(msg, 2);
        Base64Body body(src, n);
        BOOST_TEST(read_all(body, 3) == base64_encode(msg));
    }
}

BOOST_AUTO_TEST_CASE(oversized_header_section_is_incomplete) {
    std::string wire = "To: a@x.org\r\n";
    while (wire.size() <= kMaxHeaderSection)
        wire += "X-Filler: " + std::string(200, 'f') + "\r\n";
    wire += "Bcc: late@x.org\r\n\r\nbody\r\n";
    Chunks src(wire, 65536);
    MimeScan scan = scan_mime(src);
    BOOST_TEST(!scan.recipients.complete);
    BOOST_TEST(scan.size == wire.size());
    // So the envelope {a@x.org} is sent by draft, never by sendMail (which would reach late@).
    BOOST_TEST(!plan_route({"a@x.org"}, scan.recipients).send_mail);
}

BOOST_AUTO_TEST_CASE(size_rule) {
    Account smtp, graph;
    graph.name = "g";
    graph.method = DeliveryMethod::graph;
    BOOST_TEST(!method_size_limit(smtp).has_value());
    BOOST_TEST(*method_size_limit(graph) == 3145728);
    BOOST_TEST(base64_length(3145728) == 4194304u);  // exactly Graph's 4 MB request
    std::string t = size_limit_refusal(graph, 4000000);
    BOOST_TEST(t.find("message of 4000000 bytes") != std::string::npos);
    BOOST_TEST(t.find("use method = smtp") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(throttle_file) {
    TempDir dir;
    std::int64_t now = 1000;
    GraphThrottle a(dir.path.string(), "app", [&now] { return now; });
    GraphThrottle b(dir.path.string(), "app", [&now] { return now; });  // another process
    GraphThrottle other(dir.path.string(), "other", [&now] { return now; });
    BOOST_TEST(!a.blocked_until().has_value());
    a.hold_off(30);
    BOOST_TEST(fs::exists(dir.path / "graph" / "app.throttle"));
    BOOST_TEST(*b.blocked_until() == 1030);
    BOOST_TEST(!other.blocked_until().has_value());
    b.hold_off(5);  // never shortens a later time
    BOOST_TEST(*a.blocked_until() == 1030);
    now = 1030;
    BOOST_TEST(!a.blocked_until().has_value());
    // A garbled file means "not throttled".
    std::ofstream(dir.path / "graph" / "app.throttle") << "garbage";
    BOOST_TEST(!a.blocked_until().has_value());
}

BOOST_AUTO_TEST_CASE(four_slots_per_account) {
    TempDir dir;
    const std::string sd = dir.path.string();
    std::vector<GraphSlot> held;
    for (int i = 0; i < kGraphSlots; ++i)
        held.push_back(acquire_slot(sd, "app", deadline_in(std::chrono::milliseconds(500))));
    // A fifth waits until the deadline.
    auto t0 = std::chrono::steady_clock::now();
    BOOST_CHECK_THROW(acquire_slot(sd, "app", deadline_in(std::chrono::milliseconds(200))),
                      DeadlineError);
    BOOST_TEST((std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(150)));
    // Another account has its own slots.
    GraphSlot other = acquire_slot(sd, "other", deadline_in(std::chrono::milliseconds(200)));
    // A freed slot is taken again.
    int freed = held.back().index();
    held.pop_back();
    GraphSlot again = acquire_slot(sd, "app", deadline_in(std::chrono::milliseconds(500)));
    BOOST_TEST(again.index() == freed);
}

BOOST_AUTO_TEST_CASE(endpoint_hosts) {
    BOOST_TEST(endpoint_host("https://graph.microsoft.com") == "graph.microsoft.com");
    BOOST_TEST(endpoint_host("https://graph.microsoft.us/") == "graph.microsoft.us");
    BOOST_TEST(endpoint_host("https://127.0.0.1:8443/x") == "127.0.0.1");
    BOOST_TEST(endpoint_host("https://[::1]:8443") == "[::1]");
}

BOOST_AUTO_TEST_SUITE_END()
