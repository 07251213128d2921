// Redaction: registered secrets and secret-shaped values never reach a log line.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <sstream>

#include "log.hpp"

using namespace o365;

BOOST_AUTO_TEST_CASE(redact_table) {
    add_secret("registered-secret-value-123");
    struct Row {
        std::string in;
        std::string must_not_contain;
    };
    const std::vector<Row> rows = {
        {"token is registered-secret-value-123 here", "registered-secret-value-123"},
        {R"({"access_token":"abcdEFGH1234","expires_in":3599})", "abcdEFGH1234"},
        {"grant_type=refresh_token&refresh_token=0.AAAA-bbbb_cc&x=1", "0.AAAA-bbbb_cc"},
        {"client_secret=Zx8Q~secretvalue", "Zx8Q~secretvalue"},
        {"client_assertion=eyJhbGciOiJQUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln", "eyJhbGciOiJQUzI1NiJ9"},
        {"header eyJhbGciOiJQUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl end", "c2lnbmF0dXJl"},
        {"auth=Bearer abc.def.ghi123", "abc.def.ghi123"},
    };
    for (const auto& r : rows) {
        std::string out = redact(r.in);
        BOOST_TEST_CONTEXT(r.in << " -> " << out) {
            BOOST_TEST(out.find(r.must_not_contain) == std::string::npos);
            BOOST_TEST(out.find("[redacted]") != std::string::npos);
        }
    }
    BOOST_TEST(redact("plain text stays") == "plain text stays");
    BOOST_TEST(redact("status=sent (250 2.0.0 OK)") == "status=sent (250 2.0.0 OK)");
    // Setting names that start with a key word are not values (hints name them).
    BOOST_TEST(redact("hint: client_secret_file must hold the secret's Value") ==
               "hint: client_secret_file must hold the secret's Value");
    BOOST_TEST(redact("[entra] assertion_alg = PS256") == "[entra] assertion_alg = PS256");
    BOOST_TEST(redact("client_secret_file=/x client_secret=abcdefgh") ==
               "client_secret_file=/x client_secret=[redacted]");
}

BOOST_AUTO_TEST_CASE(file_log_is_postfix_style_and_redacted) {
    char path[] = "/tmp/o365-log-XXXXXX";
    int fd = ::mkstemp(path);
    ::close(fd);
    log_init(std::string("file:") + path, LogLevel::info, "o365relay-test");
    add_secret("another-registered-secret");
    log_info("to=<bob@example.org>, token another-registered-secret");
    log_debug("debug line not shown");
    log_warning("multi\nline");
    log_init("stderr", LogLevel::info, "o365relay-test");
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    ::unlink(path);
    BOOST_TEST(text.find("o365relay-test[" + std::to_string(::getpid()) +
                         "]: to=<bob@example.org>") != std::string::npos);
    BOOST_TEST(text.find("another-registered-secret") == std::string::npos);
    BOOST_TEST(text.find("debug line") == std::string::npos);
    BOOST_TEST(text.find("warning: multi line") != std::string::npos);
}
