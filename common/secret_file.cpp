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

UniqueFd open_checked(const std::string& path) {
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) != 0)
        throw ConfigError(path + ": cannot read secret file: " + std::strerror(errno));
    if (S_ISLNK(lst.st_mode) && lst.st_uid != ::geteuid() && lst.st_uid != 0)
        throw ConfigError(path + ": refusing secret file: it is a symlink owned by uid " +
                          std::to_string(lst.st_uid) + ", not by this user or root");
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) throw ConfigError(path + ": cannot open secret file: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw ConfigError(path + ": cannot stat secret file: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw ConfigError(path + ": refusing secret file: not a regular file");
    if (st.st_mode & 077)
        throw ConfigError(path + ": refusing secret file: mode " + octal_mode(st.st_mode) +
                          " lets group or other read it; run: chmod 600 " + path);
    return fd;
}

}  // namespace

std::string read_secret_file(const std::string& path) {
    UniqueFd fd = open_checked(path);
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw ConfigError(path + ": cannot read secret file: " + std::strerror(errno));
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > 1 << 20) throw ConfigError(path + ": secret file is larger than 1 MB");
    }
    while (!out.empty() &&
           (out.back() == '\n' || out.back() == '\r' || out.back() == ' ' || out.back() == '\t'))
        out.pop_back();
    if (out.empty()) throw ConfigError(path + ": secret file is empty");
    return out;
}

void check_secret_file(const std::string& path) {
    (void)open_checked(path);
}

}  // namespace o365
