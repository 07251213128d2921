// Redaction: registered secrets and secret-shaped values never reach a log line.
// Log file safety: symlinks and non-regular files are refused, log_reopen()
// follows a rotation, a failed open or reopen keeps the old target and says why.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <filesystem>
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

// --- log file safety and log_reopen() (docs/design.md section 7) ---

namespace {

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A fresh directory under /tmp, removed with its files at the end of the test.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/o365-logdir-XXXXXX";
        BOOST_REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Captures what the process writes to stderr (the target before a file is set).
struct StderrCapture {
    std::string path;
    int saved = -1;
    explicit StderrCapture(const std::string& p) : path(p) {
        std::fflush(stderr);
        saved = ::dup(2);
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(fd, 2);
        ::close(fd);
    }
    std::string text() { return read_all(path); }
    ~StderrCapture() {
        ::dup2(saved, 2);
        ::close(saved);
    }
};

}  // namespace

BOOST_AUTO_TEST_CASE(log_file_refuses_a_symlink_and_keeps_the_old_target) {
    TempDir dir;
    const std::string victim = dir / "victim";
    const std::string link = dir / "o365.log";
    { std::ofstream(victim) << ""; }
    BOOST_REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
    std::string err;
    {
        StderrCapture cap(dir / "stderr");
        log_init("stderr", LogLevel::info, "o365relay-test");
        log_init("file:" + link, LogLevel::info, "o365relay-test");
        log_info("line-after-symlink-init");
        log_init("stderr", LogLevel::info, "o365relay-test");
        err = cap.text();
    }
    BOOST_TEST(read_all(victim).empty());  // nothing written through the link
    BOOST_TEST(err.find("symbolic link") != std::string::npos);
    BOOST_TEST(err.find("line-after-symlink-init") != std::string::npos);  // target kept
}

BOOST_AUTO_TEST_CASE(log_file_refuses_a_fifo_without_blocking, *boost::unit_test::timeout(20)) {
    TempDir dir;
    const std::string fifo = dir / "o365.log";
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    std::string err;
    {
        StderrCapture cap(dir / "stderr");
        log_init("file:" + fifo, LogLevel::info, "o365relay-test");  // must not hang
        log_init("stderr", LogLevel::info, "o365relay-test");
        err = cap.text();
    }
    BOOST_TEST(err.find("not a regular file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(log_file_is_created_0640_or_tighter) {
    TempDir dir;
    const std::string path = dir / "new.log";
    mode_t old = ::umask(0);
    log_init("file:" + path, LogLevel::info, "o365relay-test");
    ::umask(old);
    log_info("first line");
    log_init("stderr", LogLevel::info, "o365relay-test");
    struct stat sb {};
    BOOST_REQUIRE(::stat(path.c_str(), &sb) == 0);
    BOOST_TEST((sb.st_mode & 07777) == 0640u);
    BOOST_TEST(read_all(path).find("first line") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(log_reopen_after_rename_writes_to_the_new_file) {
    TempDir dir;
    const std::string path = dir / "o365.log";
    const std::string rotated = dir / "o365.log.1";
    log_init("file:" + path, LogLevel::info, "o365relay-test");
    log_info("before-rotation");
    BOOST_REQUIRE(::rename(path.c_str(), rotated.c_str()) == 0);  // what logrotate does
    log_info("after-rename-before-reopen");
    log_reopen();
    log_info("after-reopen");
    log_init("stderr", LogLevel::info, "o365relay-test");
    const std::string old_text = read_all(rotated);
    const std::string new_text = read_all(path);
    BOOST_TEST(old_text.find("before-rotation") != std::string::npos);
    BOOST_TEST(old_text.find("after-rename-before-reopen") != std::string::npos);
    BOOST_TEST(old_text.find("after-reopen") == std::string::npos);
    BOOST_TEST(new_text.find("after-reopen") != std::string::npos);
    BOOST_TEST(new_text.find("before-rotation") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(log_reopen_that_fails_keeps_the_old_file_and_says_why) {
    TempDir dir;
    const std::string path = dir / "o365.log";
    const std::string rotated = dir / "o365.log.1";
    const std::string elsewhere = dir / "elsewhere";
    { std::ofstream(elsewhere) << ""; }
    log_init("file:" + path, LogLevel::info, "o365relay-test");
    BOOST_REQUIRE(::rename(path.c_str(), rotated.c_str()) == 0);
    // A symlink where the new file should be: the reopen must refuse it.
    BOOST_REQUIRE(::symlink(elsewhere.c_str(), path.c_str()) == 0);
    log_reopen();
    log_info("after-failed-reopen");
    log_init("stderr", LogLevel::info, "o365relay-test");
    const std::string old_text = read_all(rotated);
    BOOST_TEST(old_text.find("not reopened") != std::string::npos);
    BOOST_TEST(old_text.find("symbolic link") != std::string::npos);
    BOOST_TEST(old_text.find("after-failed-reopen") != std::string::npos);
    BOOST_TEST(read_all(elsewhere).empty());
}

BOOST_AUTO_TEST_CASE(log_reopen_does_nothing_for_stderr) {
    TempDir dir;
    std::string err;
    {
        StderrCapture cap(dir / "stderr");
        log_init("stderr", LogLevel::info, "o365relay-test");
        log_reopen();
        log_info("still-on-stderr");
        err = cap.text();
    }
    BOOST_TEST(err.find("still-on-stderr") != std::string::npos);
    BOOST_TEST(err.find("not reopened") == std::string::npos);
}
