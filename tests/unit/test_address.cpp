// Address parsing and header From extraction (table-driven).
#include <boost/test/unit_test.hpp>

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
