// base64 and base64url (base64.hpp): RFC 4648 test vectors, the URL alphabet,
// strict decoding.
#include <boost/test/unit_test.hpp>

#include "base64.hpp"
#include "error.hpp"

using namespace o365;

BOOST_AUTO_TEST_SUITE(base64)

BOOST_AUTO_TEST_CASE(rfc4648_vectors) {
    const std::pair<std::string, std::string> v[] = {{"", ""},
                                                     {"f", "Zg=="},
                                                     {"fo", "Zm8="},
                                                     {"foo", "Zm9v"},
                                                     {"foob", "Zm9vYg=="},
                                                     {"fooba", "Zm9vYmE="},
                                                     {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, enc] : v) {
        BOOST_TEST(base64_encode(plain) == enc);
        BOOST_TEST(base64_decode(enc) == plain);
        std::string url = enc;
        while (!url.empty() && url.back() == '=')
            url.pop_back();
        BOOST_TEST(base64url_encode(plain) == url);
        BOOST_TEST(base64url_decode(url) == plain);
        BOOST_TEST(base64url_decode(enc) == plain);  // padded input accepted
    }
}

BOOST_AUTO_TEST_CASE(url_alphabet) {
    std::string bytes = "\xfb\xff\xbf";
    BOOST_TEST(base64_encode(bytes) == "+/+/");
    BOOST_TEST(base64url_encode(bytes) == "-_-_");
    BOOST_TEST(base64url_decode("-_-_") == bytes);
    BOOST_TEST(base64_decode("+/+/") == bytes);
}

BOOST_AUTO_TEST_CASE(binary_roundtrip) {
    std::string all;
    for (int i = 0; i < 1000; ++i)
        all.push_back(static_cast<char>(i * 7 + 3));
    for (std::size_t len : {0u, 1u, 2u, 3u, 254u, 255u, 256u, 1000u}) {
        std::string s = all.substr(0, len);
        BOOST_TEST(base64_decode(base64_encode(s)) == s);
        BOOST_TEST(base64url_decode(base64url_encode(s)) == s);
    }
}

BOOST_AUTO_TEST_CASE(strict_decoding) {
    for (const char* bad : {"Zg=", "Zm9v!", "Zm 9v", "Zm9v\n", "=Zm9", "Z===", "Zg==Zg==", "-_-_"})
        BOOST_CHECK_THROW(base64_decode(bad), Error);
    for (const char* bad : {"Z", "+/+/", "a b", "abc$"})
        BOOST_CHECK_THROW(base64url_decode(bad), Error);
}

BOOST_AUTO_TEST_SUITE_END()
