// Secret files: mode and owner checks, trailing whitespace.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>

#include "error.hpp"
#include "secret_file.hpp"

using namespace o365;
namespace fs = std::filesystem;

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/o365-secret-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string write(const std::string& name, const std::string& content, mode_t mode) {
        auto p = path / name;
        std::ofstream(p) << content;
        ::chmod(p.c_str(), mode);
        return p.string();
    }
};

std::string error_of(const std::string& path) {
    try {
        read_secret_file(path);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

BOOST_AUTO_TEST_CASE(reads_and_trims) {
    TempDir d;
    BOOST_TEST(read_secret_file(d.write("s", "s3cr3t-value \n\n", 0600)) == "s3cr3t-value");
    BOOST_TEST(read_secret_file(d.write("s2", "with inner space\tkept\r\n", 0400)) ==
               "with inner space\tkept");
}

BOOST_AUTO_TEST_CASE(refuses_readable_by_group_or_other) {
    TempDir d;
    std::string e = error_of(d.write("g", "x", 0640));
    BOOST_TEST(e.find("mode 0640") != std::string::npos);
    BOOST_TEST(e.find("chmod 600") != std::string::npos);
    BOOST_TEST(!error_of(d.write("o", "x", 0604)).empty());
    BOOST_TEST(error_of(d.write("ok", "x", 0600)).empty());
}

BOOST_AUTO_TEST_CASE(refuses_empty_missing_and_directories) {
    TempDir d;
    BOOST_TEST(error_of(d.write("e", "\n", 0600)).find("empty") != std::string::npos);
    BOOST_TEST(error_of((d.path / "missing").string()).find("No such file") != std::string::npos);
    fs::create_directory(d.path / "dir");
    ::chmod((d.path / "dir").c_str(), 0700);
    BOOST_TEST(error_of((d.path / "dir").string()).find("not a regular file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(symlinks_by_owner) {
    TempDir d;
    std::string target = d.write("t", "secret", 0600);
    fs::create_symlink(target, d.path / "own-link");
    BOOST_TEST(read_secret_file((d.path / "own-link").string()) == "secret");
    if (::geteuid() != 0) {
        BOOST_TEST_MESSAGE("not root: foreign-owned symlink case needs root, skipped");
        return;
    }
    fs::create_symlink(target, d.path / "foreign-link");
    BOOST_REQUIRE(::lchown((d.path / "foreign-link").c_str(), 65534, 65534) == 0);
    std::string e = error_of((d.path / "foreign-link").string());
    BOOST_TEST(e.find("symlink owned by uid 65534") != std::string::npos);
}

// A FIFO must be refused before anything waits for a writer. If the reader
// blocks (the defect), the test opens the writer end itself after 2 s so that
// it fails instead of hanging.
BOOST_AUTO_TEST_CASE(refuses_fifo_promptly) {
    TempDir d;
    const std::string fifo = (d.path / "fifo").string();
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    for (int check = 0; check < 2; ++check) {
        auto t0 = std::chrono::steady_clock::now();
        auto f = std::async(std::launch::async, [&] {
            try {
                if (check) {
                    check_secret_file(fifo);
                } else {
                    read_secret_file(fifo);
                }
            } catch (const ConfigError& e) {
                return std::string(e.what());
            }
            return std::string();
        });
        if (f.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
            int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // unblock the reader
            f.wait();
            if (w >= 0) ::close(w);
            BOOST_ERROR("reading a FIFO blocked (check=" << check << ")");
            continue;
        }
        std::string e = f.get();
        BOOST_TEST(e.find(fifo) != std::string::npos, e);
        BOOST_TEST(e.find("not a regular file") != std::string::npos, e);
        BOOST_TEST(e.find("FIFO") != std::string::npos, e);
        BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1)));
    }
}
