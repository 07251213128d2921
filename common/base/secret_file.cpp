#include "secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "error.hpp"
#include "unique_fd.hpp"

namespace o365 {

namespace {

std::string octal_mode(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
}

// What a non-regular file is, for the refusal.
const char* file_kind(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

// Opens without blocking (a FIFO would wait for a writer) and refuses
// anything but a regular file before anything reads it.
UniqueFd open_regular(const std::string& path, const std::string& what, struct stat& st) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd) throw ConfigError(path + ": cannot read " + what + ": " + std::strerror(errno));
    if (::fstat(fd.get(), &st) != 0)
        throw ConfigError(path + ": cannot stat " + what + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw ConfigError(path + ": refusing " + what + ": not a regular file (it is " +
                          file_kind(st.st_mode) + ")");
    return fd;
}

std::string read_all(int fd, const std::string& path, const std::string& what, std::size_t max) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw ConfigError(path + ": cannot read " + what + ": " + std::strerror(errno));
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > max)
            throw ConfigError(path + ": " + what + " is larger than " + std::to_string(max >> 20) +
                              " MB");
    }
    return out;
}

UniqueFd open_checked(const std::string& path) {
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) != 0)
        throw ConfigError(path + ": cannot read secret file: " + std::strerror(errno));
    if (S_ISLNK(lst.st_mode) && lst.st_uid != ::geteuid() && lst.st_uid != 0)
        throw ConfigError(path + ": refusing secret file: it is a symlink owned by uid " +
                          std::to_string(lst.st_uid) + ", not by this user or root");
    struct stat st {};
    UniqueFd fd = open_regular(path, "secret file", st);
    if (st.st_mode & 077)
        throw ConfigError(path + ": refusing secret file: mode " + octal_mode(st.st_mode) +
                          " lets group or other read it; run: chmod 600 " + path);
    return fd;
}

}  // namespace

std::string read_secret_file(const std::string& path) {
    UniqueFd fd = open_checked(path);
    std::string out = read_all(fd.get(), path, "secret file", 1 << 20);
    while (!out.empty() &&
           (out.back() == '\n' || out.back() == '\r' || out.back() == ' ' || out.back() == '\t'))
        out.pop_back();
    if (out.empty()) throw ConfigError(path + ": secret file is empty");
    return out;
}

void check_secret_file(const std::string& path) {
    (void)open_checked(path);
}

std::string read_credential_file(const std::string& path, const std::string& what,
                                 std::size_t max) {
    struct stat st {};
    UniqueFd fd = open_regular(path, what, st);
    return read_all(fd.get(), path, what, max);
}

}  // namespace o365
