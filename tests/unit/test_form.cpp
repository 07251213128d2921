// form_encode (http.hpp) and parse_retry_after: every special character of a
// form value is percent-encoded, so a secret with & = + % or spaces arrives
// intact.
#include <boost/test/unit_test.hpp>

#include "http.hpp"

using namespace o365;

BOOST_AUTO_TEST_SUITE(form)

struct Row {
    std::string value;
    std::string encoded;
};

BOOST_AUTO_TEST_CASE(every_special_character_is_encoded) {
    const Row rows[] = {
        {"plain", "plain"},
        {"a b", "a%20b"},
        {"a+b", "a%2Bb"},
        {"a&b=c", "a%26b%3Dc"},
        {"100%", "100%25"},
        {"%41", "%2541"},
        {"-._~", "-._~"},
        {"/?#[]@!$'()*,;:", "%2F%3F%23%5B%5D%40%21%24%27%28%29%2A%2C%3B%3A"},
        {"\"<>\\^`{|}", "%22%3C%3E%5C%5E%60%7B%7C%7D"},
        {"\r\n\t", "%0D%0A%09"},
        {std::string("a\0b", 3), "a%00b"},
        {"\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9"},  // "été" in UTF-8
        {"\xe2\x82\xac", "%E2%82%AC"},           // euro sign
        {"\xf0\x9f\x94\x91", "%F0%9F%94%91"},    // 4-byte UTF-8
        {"https://outlook.office.com/SMTP.Send offline_access",
         "https%3A%2F%2Foutlook.office.com%2FSMTP.Send%20offline_access"},
        {"", ""},
    };
    for (const auto& r : rows) {
        BOOST_TEST_CONTEXT("value " << r.encoded) {
            BOOST_TEST(form_encode({{"v", r.value}}) == "v=" + r.encoded);
        }
    }
}

BOOST_AUTO_TEST_CASE(names_are_encoded_and_fields_joined_in_order) {
    FormFields f = {
        {"grant_type", "client_credentials"}, {"client_secret", "s3cr~t+&=/ %x"}, {"we ird", "1"}};
    BOOST_TEST(form_encode(f) ==
               "grant_type=client_credentials&client_secret=s3cr~t%2B%26%3D%2F%20%25x&we%20ird=1");
    BOOST_TEST(form_encode({}) == "");
}

BOOST_AUTO_TEST_CASE(every_byte_roundtrips) {
    std::string all;
    for (int c = 0; c < 256; ++c)
        all.push_back(static_cast<char>(c));
    std::string enc = form_encode({{"v", all}}).substr(2);
    // Only unreserved characters stay literal; decode by hand and compare.
    std::string dec;
    for (std::size_t i = 0; i < enc.size(); ++i) {
        char c = enc[i];
        bool unreserved = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
                          c == '_' || c == '~';
        if (c == '%') {
            BOOST_REQUIRE(i + 2 < enc.size());
            dec.push_back(static_cast<char>(std::stoi(enc.substr(i + 1, 2), nullptr, 16)));
            i += 2;
        } else {
            BOOST_TEST_REQUIRE(unreserved, "literal character " << int(c) << " is not unreserved");
            dec.push_back(c);
        }
    }
    BOOST_TEST(dec == all);
}

BOOST_AUTO_TEST_CASE(retry_after_values) {
    const long long now = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT
    BOOST_TEST(parse_retry_after("60", now) == 60);
    BOOST_TEST(parse_retry_after(" 120 ", now) == 120);
    BOOST_TEST(parse_retry_after("0", now) == 0);
    BOOST_TEST(parse_retry_after("", now) == 0);
    BOOST_TEST(parse_retry_after("soon", now) == 0);
    BOOST_TEST(parse_retry_after("-5", now) == 0);
    BOOST_TEST(parse_retry_after("99999999999999999999", now) == 86400);
    BOOST_TEST(parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now) == 60);
    BOOST_TEST(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0);  // past
}

BOOST_AUTO_TEST_SUITE_END()
