// Unit tests of common/smtp_reply: complete replies from any fragmentation,
// enhanced codes, limits and malformed input.
#include <boost/test/unit_test.hpp>

#include "error.hpp"
#include "smtp_reply.hpp"

using o365::ReplyParser;
using o365::SmtpReply;

namespace {

std::vector<SmtpReply> parse_all(std::string_view input, std::size_t step,
                                 ReplyParser::Limits limits = {}) {
    ReplyParser p(limits);
    std::vector<SmtpReply> out;
    for (std::size_t i = 0; i < input.size(); i += step) {
        p.feed(input.substr(i, step));
        while (auto r = p.next())
            out.push_back(*r);
    }
    return out;
}

const char* kEhlo =
    "250-SN4PR0501CA0049.outlook.office365.com Hello [203.0.113.9]\r\n"
    "250-SIZE 157286400\r\n"
    "250-PIPELINING\r\n"
    "250-DSN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-STARTTLS\r\n"
    "250-8BITMIME\r\n"
    "250-BINARYMIME\r\n"
    "250-CHUNKING\r\n"
    "250 SMTPUTF8\r\n";

}  // namespace

BOOST_AUTO_TEST_SUITE(smtp_reply)

BOOST_AUTO_TEST_CASE(multiline_any_fragmentation) {
    std::string input = std::string(kEhlo) + "220 2.0.0 SMTP server ready\r\n";
    for (std::size_t step : {1u, 2u, 3u, 7u, 64u, 4096u}) {
        auto rs = parse_all(input, step);
        BOOST_TEST_CONTEXT("step " << step) {
            BOOST_REQUIRE_EQUAL(rs.size(), 2u);
            BOOST_TEST(rs[0].code == 250);
            BOOST_TEST(rs[0].lines.size() == 10u);
            BOOST_TEST(rs[0].lines[1] == "SIZE 157286400");
            BOOST_TEST(rs[0].lines[9] == "SMTPUTF8");
            BOOST_TEST(rs[0].enhanced == "");
            BOOST_TEST(rs[1].code == 220);
            BOOST_TEST(rs[1].enhanced == "2.0.0");
            BOOST_TEST(rs[1].text() == "220 2.0.0 SMTP server ready");
        }
    }
}

BOOST_AUTO_TEST_CASE(enhanced_codes_from_o365_replies) {
    struct Row {
        const char* wire;
        int code;
        const char* enhanced;
        const char* text;
    };
    const Row rows[] = {
        {"535 5.7.3 Authentication unsuccessful [SN4PR0501CA0049.namprd05.prod.outlook.com]\r\n",
         535, "5.7.3",
         "535 5.7.3 Authentication unsuccessful [SN4PR0501CA0049.namprd05.prod.outlook.com]"},
        {"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
         "Tenant.\r\n",
         535, "5.7.139",
         "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
         "Tenant."},
        {"432 4.3.2 Concurrent connections limit exceeded\r\n", 432, "4.3.2",
         "432 4.3.2 Concurrent connections limit exceeded"},
        {"250 2.0.0 OK <abc@x> [Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com]\r\n", 250,
         "2.0.0", "250 2.0.0 OK <abc@x> [Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com]"},
        {"235 2.7.0 Authentication successful\r\n", 235, "2.7.0",
         "235 2.7.0 Authentication successful"},
        {"554 5.2.252 SendAsDenied; a@x not allowed to send as b@y\r\n", 554, "5.2.252",
         "554 5.2.252 SendAsDenied; a@x not allowed to send as b@y"},
        // class of the enhanced code must agree with the reply code
        {"550 4.1.1 odd\r\n", 550, "", "550 4.1.1 odd"},
        // not an enhanced code: four digits, missing part, no space after it
        {"550 5.1234.1 x\r\n", 550, "", "550 5.1234.1 x"},
        {"550 5.1 x\r\n", 550, "", "550 5.1 x"},
        {"550 5.1.1x\r\n", 550, "", "550 5.1.1x"},
        // bare code, bare LF, code followed by space only
        {"250\r\n", 250, "", "250"},
        {"250 ok\n", 250, "", "250 ok"},
        {"354 \r\n", 354, "", "354"},
        // multi-line with the enhanced code on each line
        {"550-5.1.1 first\r\n550 5.1.1 second\r\n", 550, "5.1.1", "550 5.1.1 first second"},
        // control characters are made printable; tab becomes a space
        {"550 5.7.1 a\tb\x01\x7f"
         "c\r\n",
         550, "5.7.1", "550 5.7.1 a b??c"},
        {"334 \r\n", 334, "", "334"},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.wire) {
            auto rs = parse_all(r.wire, 1);
            BOOST_REQUIRE_EQUAL(rs.size(), 1u);
            BOOST_TEST(rs[0].code == r.code);
            BOOST_TEST(rs[0].enhanced == r.enhanced);
            BOOST_TEST(rs[0].text() == r.text);
        }
    }
}

BOOST_AUTO_TEST_CASE(pipelined_replies_in_one_read) {
    auto rs = parse_all(
        "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n550 5.1.1 unknown\r\n354 Start mail "
        "input; end with <CRLF>.<CRLF>\r\n",
        4096);
    BOOST_REQUIRE_EQUAL(rs.size(), 4u);
    BOOST_TEST(rs[2].code == 550);
    BOOST_TEST(rs[2].enhanced == "5.1.1");
    BOOST_TEST(rs[3].code == 354);
}

BOOST_AUTO_TEST_CASE(partial_state) {
    ReplyParser p;
    BOOST_TEST(!p.has_partial());
    p.feed("220 ready\r\n25");
    BOOST_TEST(p.has_partial());
    BOOST_TEST(p.pending() == 1u);
    BOOST_TEST(p.next()->code == 220);
    BOOST_TEST(!p.next());
    p.feed("0-a\r\n");
    BOOST_TEST(p.has_partial());  // a continuation line is buffered
    p.feed("250 b\r\n");
    BOOST_TEST(!p.has_partial());
    BOOST_TEST(p.next()->lines.size() == 2u);
}

BOOST_AUTO_TEST_CASE(malformed_input_is_a_temporary_error) {
    const char* bad[] = {
        "hello\r\n",           // no code
        "25\r\n",              // short
        "2x0 ok\r\n",          // not digits
        "199 ok\r\n",          // out of range
        "600 ok\r\n",          // out of range
        "250_ok\r\n",          // bad separator
        "250-a\r\n251 b\r\n",  // continuation with another code
        "\r\n",                // empty line
    };
    for (const char* b : bad) {
        BOOST_TEST_CONTEXT(b) {
            ReplyParser p;
            try {
                p.feed(b);
                BOOST_FAIL("no error");
            } catch (const o365::Error& e) {
                BOOST_TEST((e.error_class() == o365::ErrorClass::temporary));
                BOOST_TEST(std::string(e.what()).rfind("malformed reply from server: ", 0) == 0);
            }
            // the parser stays failed
            BOOST_CHECK_THROW(p.feed("250 ok\r\n"), o365::Error);
        }
    }
}

BOOST_AUTO_TEST_CASE(limits) {
    ReplyParser::Limits lim{16, 3};
    // exactly 16 bytes of line: accepted, with CRLF or LF
    BOOST_TEST(parse_all("250 456789012345\r\n", 1, lim).size() == 1u);
    BOOST_TEST(parse_all("250 456789012345\n", 1, lim).size() == 1u);
    BOOST_CHECK_THROW(parse_all("250 4567890123456\r\n", 1, lim), o365::Error);
    // an endless line without newline fails as soon as it passes the limit
    ReplyParser p(lim);
    BOOST_CHECK_THROW(p.feed(std::string(100, '2')), o365::Error);
    // lines per reply
    BOOST_TEST(parse_all("250-a\r\n250-b\r\n250 c\r\n", 1, lim).size() == 1u);
    try {
        parse_all("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", 1, lim);
        BOOST_FAIL("no error");
    } catch (const o365::Error& e) {
        BOOST_TEST(std::string(e.what()).find("more than 3 lines") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(enhanced_code_parser) {
    BOOST_TEST(o365::parse_enhanced_code("5.7.139 x") == "5.7.139");
    BOOST_TEST(o365::parse_enhanced_code("2.0.0") == "2.0.0");
    BOOST_TEST(o365::parse_enhanced_code("4.123.456 x") == "4.123.456");
    BOOST_TEST(o365::parse_enhanced_code("3.0.0 x") == "");
    BOOST_TEST(o365::parse_enhanced_code("5..1 x") == "");
    BOOST_TEST(o365::parse_enhanced_code("5.1.") == "");
    BOOST_TEST(o365::parse_enhanced_code("") == "");
}

BOOST_AUTO_TEST_SUITE_END()
