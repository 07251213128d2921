// Address parsing and header From extraction (table-driven).
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "address.hpp"

using namespace o365;

BOOST_AUTO_TEST_CASE(parse_address_table) {
    struct Row {
        const char* in;
        const char* normalized;  // nullptr: invalid
    };
    const Row rows[] = {
        {"a@b.c", "a@b.c"},
        {"A@B.C", "A@b.c"},
        {"<a@b.c>", "a@b.c"},
        {"\"john doe\"@Example.ORG", "\"john doe\"@example.org"},
        {"\"a@b\"@c.d", "\"a@b\"@c.d"},
        {"用户@例子.广告", "用户@例子.广告"},
        {"", nullptr},
        {"<>", nullptr},
        {"noat", nullptr},
        {"@b.c", nullptr},
        {"a@", nullptr},
        {"a@b..c", nullptr},
        {"a@.b", nullptr},
        {"a b@c.d", nullptr},
        {"a@b.c\r\nRCPT TO:<x@y>", nullptr},
        {"a\x01@b.c", nullptr},
        {"\"unterminated@b.c", nullptr},
    };
    for (const auto& r : rows) {
        auto a = parse_address(r.in);
        BOOST_TEST_CONTEXT(r.in) {
            if (!r.normalized) {
                BOOST_TEST(!a.has_value());
            } else {
                BOOST_REQUIRE(a.has_value());
                BOOST_TEST(a->normalized() == r.normalized);
            }
        }
    }
    BOOST_TEST(has_8bit("用户@x"));
    BOOST_TEST(!has_8bit("user@x"));
    BOOST_TEST(has_control_chars("a\tb"));
    BOOST_TEST(!has_control_chars("ab"));
}

BOOST_AUTO_TEST_CASE(header_address_table) {
    struct Row {
        const char* value;
        const char* address;  // nullptr: none
        const char* display;
    };
    const Row rows[] = {
        {"john@example.com", "john@example.com", ""},
        {"John Doe <john@example.com>", "john@example.com", "John Doe"},
        {"\"Doe, John\" <john@example.com>", "john@example.com", "\"Doe, John\""},
        {"\"a <fake@evil.com>\" <real@example.com>", "real@example.com", "\"a <fake@evil.com>\""},
        {"john@example.com (John Doe)", "john@example.com", ""},
        {"(comment <x@y>) Jo <jo@example.com>", "jo@example.com", "(comment <x@y>) Jo"},
        {"  <spaced@example.com>  ", "spaced@example.com", ""},
        {"a@b.c, d@e.f", "a@b.c", ""},
        {"=?utf-8?q?J=C3=B6rg?= <jorg@example.com>", "jorg@example.com", "=?utf-8?q?J=C3=B6rg?="},
        {"Undisclosed:;", nullptr, ""},
        {"", nullptr, ""},
        {"Broken <no-close@example.com", nullptr, "Broken"},
    };
    for (const auto& r : rows) {
        auto a = header_address(r.value);
        BOOST_TEST_CONTEXT(r.value) {
            if (!r.address) {
                BOOST_TEST(!a.has_value());
            } else {
                BOOST_REQUIRE(a.has_value());
                BOOST_TEST(*a == r.address);
            }
            BOOST_TEST(header_display_name(r.value) == r.display);
        }
    }
}

BOOST_AUTO_TEST_CASE(header_addresses_table) {
    struct Row {
        const char* value;
        std::vector<std::string> addresses;
    };
    const Row rows[] = {
        {"john@example.com", {"john@example.com"}},
        {"John Doe <john@example.com>", {"john@example.com"}},
        {"a@b.c, d@e.f", {"a@b.c", "d@e.f"}},
        {"noreply@contoso.com, ceo@victim.example", {"noreply@contoso.com", "ceo@victim.example"}},
        // quoted display names with ',', '@', '<' and ':'
        {"\"Doe, John\" <john@example.com>, x@y.z", {"john@example.com", "x@y.z"}},
        {"\"ceo@victim.example, Inc\" <noreply@contoso.com>", {"noreply@contoso.com"}},
        {"\"a <fake@evil.com>\" <real@example.com>", {"real@example.com"}},
        {"\"Team: x\" <t@example.com>", {"t@example.com"}},
        // comments, nested, with ',' and '@'
        {"john@example.com (John, Doe)", {"john@example.com"}},
        {"(c <x@y>, d) Jo <jo@example.com> (more (nested, z@w))", {"jo@example.com"}},
        {"a@b.c (x), (only a comment), d@e.f", {"a@b.c", "d@e.f"}},
        // groups
        {"Team: a@x.example, B <b@y.example>;", {"a@x.example", "b@y.example"}},
        {"Team: a@x.example;, c@z.example", {"a@x.example", "c@z.example"}},
        {"Undisclosed recipients:;", {}},
        {"\"Quoted, Group\": a@x.example;", {"a@x.example"}},
        // obsolete forms: empty elements, a route, white space around '.' and '@'
        {"a@b.c,, ,d@e.f", {"a@b.c", "d@e.f"}},
        {"<@relay1.example,@relay2.example:user@x.example>", {"user@x.example"}},
        {"john . doe @ example . com", {"john.doe@example.com"}},
        {"\"john doe\"@example.com, <\"a,b\"@c.d>", {"\"john doe\"@example.com", "\"a,b\"@c.d"}},
        {"user@[192.0.2.1], x@y.z", {"user@[192.0.2.1]", "x@y.z"}},
        {"=?utf-8?q?J=C3=B6rg?= <jorg@example.com>", {"jorg@example.com"}},
        {"  <spaced@example.com>  ", {"spaced@example.com"}},
        {"<>", {""}},
        {"", {}},
        // malformed: returned as written, never dropped
        {"a@b.c, Broken <no-close@example.com", {"a@b.c", "Broken <no-close@example.com"}},
        {"a@b.c (open, x@y.z", {"a@b.c (open, x@y.z"}},
        {"Name <a@b.c> trailing@x.y", {"Name <a@b.c> trailing@x.y"}},
        {"John Doe jd@example.com", {"John Doe jd@example.com"}},
        {"ceo@victim.example: a@b.c;", {"ceo@victim.example: a@b.c"}},
    };
    for (const auto& r : rows) {
        BOOST_TEST_CONTEXT(r.value) {
            BOOST_TEST(header_addresses(r.value) == r.addresses, boost::test_tools::per_element());
        }
    }
}

BOOST_AUTO_TEST_CASE(header_mailboxes_display_and_comment) {
    auto m = header_mailboxes(
        "MAILER-DAEMON@relay.example (Mail Delivery System), \"Doe, J\" <j@x.example>");
    BOOST_REQUIRE(m.size() == 2u);
    BOOST_TEST(m[0].address == "MAILER-DAEMON@relay.example");
    BOOST_TEST(m[0].display == "");
    BOOST_TEST(m[0].comment == "Mail Delivery System");
    BOOST_TEST(m[1].display == "\"Doe, J\"");
    BOOST_TEST(m[1].comment == "");
    BOOST_TEST(header_comment("x@y (Say \\\"hi\\\") (second)") == "Say \"hi\"");
    BOOST_TEST(header_comment("\"(not a comment)\" <x@y>") == "");
}
