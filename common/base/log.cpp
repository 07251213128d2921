#include "log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>
#include <vector>

#include "error.hpp"
#include "unique_fd.hpp"

namespace o365 {

namespace {

std::string short_hostname() {
    char host[256] = "localhost";
    ::gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (char* dot = std::strchr(host, '.')) *dot = '\0';
    return host;
}

struct LogState {
    std::mutex mu;
    enum class Target { stderr_, syslog, file } target = Target::stderr_;
    LogLevel level = LogLevel::info;
    std::string ident = "o365relay";
    std::string host = short_hostname();  // read once, not per line
    std::string path;                     // of the file target
    UniqueFd file;                        // the file target's descriptor
    std::vector<std::string> secrets;

    int fd() const { return file ? file.get() : 2; }
};

LogState& state() {
    static LogState* s = new LogState();  // never destroyed: usable during exit
    return *s;
}

int syslog_priority(LogLevel l) {
    switch (l) {
        case LogLevel::debug:
            return LOG_DEBUG;
        case LogLevel::info:
            return LOG_INFO;
        case LogLevel::warning:
            return LOG_WARNING;
        case LogLevel::error:
            return LOG_ERR;
    }
    return LOG_INFO;
}

const char* level_prefix(LogLevel l) {
    switch (l) {
        case LogLevel::warning:
            return "warning: ";
        case LogLevel::error:
            return "error: ";
        default:
            return "";
    }
}

bool token_char(unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '+' || c == '/' ||
           c == '=' || c == '~' || c == '%';
}

// Masks the value that follows each of `keys` (key=value, "key":"value", key: value).
void mask_after_keys(std::string& s) {
    static const char* keys[] = {
        "access_token", "refresh_token", "client_secret", "client_assertion", "id_token",
        "device_code",  "assertion",     "password",      "Bearer ",          "auth="};
    for (const char* k : keys) {
        std::string key = k;
        std::size_t pos = 0;
        while ((pos = s.find(key, pos)) != std::string::npos) {
            std::size_t v = pos + key.size();
            // skip separators: ", :, =, spaces
            while (v < s.size() && (s[v] == '"' || s[v] == ':' || s[v] == '=' || s[v] == ' '))
                ++v;
            // A key word that continues as a longer name (client_secret_file,
            // assertion_alg) names a setting, not a value: keep it.
            if (v == pos + key.size() &&
                (std::isalnum(static_cast<unsigned char>(key.back())) || key.back() == '_')) {
                pos = v;
                continue;
            }
            std::size_t e = v;
            while (e < s.size() && token_char(static_cast<unsigned char>(s[e])))
                ++e;
            if (e - v >= 4 && s.compare(v, 10, "[redacted]") != 0) {
                s.replace(v, e - v, "[redacted]");
                pos = v + 10;
            } else {
                pos = v;
            }
        }
    }
}

// Masks JWT-shaped words: eyJ... with two dots.
void mask_jwts(std::string& s) {
    std::size_t pos = 0;
    while ((pos = s.find("eyJ", pos)) != std::string::npos) {
        std::size_t e = pos;
        int dots = 0;
        while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '-' ||
                                s[e] == '_' || s[e] == '.')) {
            if (s[e] == '.') ++dots;
            ++e;
        }
        if (dots >= 2) {
            s.replace(pos, e - pos, "[redacted]");
            pos += 10;
        } else {
            pos = e;
        }
    }
}

}  // namespace

namespace {

// Opens `path` for appending the way the header describes. Throws
// Error(configuration) naming the path and the reason.
UniqueFd open_log_file(const std::string& path) {
    auto fail = [&](const std::string& why) {
        return Error(ErrorClass::configuration, "log file " + path + ": " + why);
    };
    UniqueFd fd(::open(
        path.c_str(),
        O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640));
    if (!fd) {
        int err = errno;
        if (err == ELOOP) throw fail("is a symbolic link (refused: name the file itself)");
        // A FIFO without a reader or a socket (O_NONBLOCK turns the wait into ENXIO).
        if (err == ENXIO) throw fail("is not a regular file (refused)");
        throw fail(std::string("cannot open: ") + std::strerror(err) + " (running as uid " +
                   std::to_string(::geteuid()) + ")");
    }
    struct stat sb {};
    if (::fstat(fd.get(), &sb) != 0) throw fail(std::string("fstat: ") + std::strerror(errno));
    if (!S_ISREG(sb.st_mode)) throw fail("is not a regular file (refused)");
    int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
        throw fail(std::string("fcntl: ") + std::strerror(errno));
    return fd;
}

// The line as it is written to stderr or a file (caller holds st.mu).
std::string format_line(const LogState& st, LogLevel level, const std::string& clean) {
    char stamp[64] = "";
    std::time_t now = std::time(nullptr);
    struct tm tmv;
    ::localtime_r(&now, &tmv);
    std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tmv);
    return std::string(stamp) + " " + st.host + " " + st.ident + "[" + std::to_string(::getpid()) +
           "]: " + level_prefix(level) + clean + "\n";
}

}  // namespace

void log_init(std::string_view target, LogLevel level, std::string_view ident) {
    LogState& st = state();
    std::string failure;
    // 1. Open the new file first, outside the lock; nothing changes yet.
    UniqueFd fresh;
    const bool to_file = target.rfind("file:", 0) == 0;
    std::string path = to_file ? std::string(target.substr(5)) : std::string();
    if (to_file) {
        try {
            fresh = open_log_file(path);
        } catch (const std::exception& e) {
            failure = e.what();
        }
    }
    {
        std::lock_guard lk(st.mu);
        // 2. Level and ident apply whatever the target.
        st.level = level;
        st.ident = std::string(ident);
        // 3. Switch the target; a file that could not be opened keeps the old one.
        if (to_file && fresh) {
            if (st.target == LogState::Target::syslog) ::closelog();
            st.file = std::move(fresh);  // closes the previous file, if any
            st.path = path;
            st.target = LogState::Target::file;
        } else if (target == "syslog") {
            st.file.reset();
            st.path.clear();
            st.target = LogState::Target::syslog;
        } else if (!to_file) {
            if (st.target == LogState::Target::syslog) ::closelog();
            st.file.reset();
            st.path.clear();
            st.target = LogState::Target::stderr_;
        }
        // syslog keeps a pointer to the ident: hand it the current one.
        if (st.target == LogState::Target::syslog)
            ::openlog(st.ident.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
    // 4. Say why on the target that stays.
    if (!failure.empty()) log_line(LogLevel::error, failure + "; logging stays where it was");
}

void log_reopen() noexcept {
    try {
        LogState& st = state();
        std::string path;
        {
            std::lock_guard lk(st.mu);
            if (st.target != LogState::Target::file) return;
            path = st.path;
        }
        UniqueFd fresh;
        try {
            fresh = open_log_file(path);
        } catch (const std::exception& e) {
            log_line(LogLevel::warning,
                     std::string(e.what()) +
                         "; not reopened, still writing to the old file (the service user must "
                         "be able to open it, e.g. logrotate \"create 0640 o365relay adm\")");
            return;
        }
        std::lock_guard lk(st.mu);
        if (st.target == LogState::Target::file && st.path == path) std::swap(st.file, fresh);
        // `fresh` now holds the old descriptor (or the unused new one) and closes it.
    } catch (...) {
    }
}

bool log_enabled(LogLevel level) {
    LogState& st = state();
    std::lock_guard lk(st.mu);
    return level >= st.level;
}

void add_secret(std::string_view secret) {
    if (secret.size() < 8) return;
    LogState& st = state();
    std::lock_guard lk(st.mu);
    for (const auto& s : st.secrets)
        if (s == secret) return;
    if (st.secrets.size() > 256) st.secrets.erase(st.secrets.begin());
    st.secrets.emplace_back(secret);
}

std::string redact(std::string_view text) {
    std::string s(text);
    {
        LogState& st = state();
        std::lock_guard lk(st.mu);
        for (const auto& secret : st.secrets) {
            std::size_t pos = 0;
            while ((pos = s.find(secret, pos)) != std::string::npos) {
                s.replace(pos, secret.size(), "[redacted]");
                pos += 10;
            }
        }
    }
    mask_jwts(s);
    mask_after_keys(s);
    return s;
}

void log_line(LogLevel level, std::string_view text) noexcept {
    try {
        LogState& st = state();
        {
            std::lock_guard lk(st.mu);
            if (level < st.level) return;
        }
        std::string clean = redact(text);
        for (char& c : clean)
            if (c == '\n' || c == '\r') c = ' ';
        std::lock_guard lk(st.mu);
        if (st.target == LogState::Target::syslog) {
            ::syslog(syslog_priority(level), "%s%s", level_prefix(level), clean.c_str());
            return;
        }
        std::string line = format_line(st, level, clean);
        ssize_t ignored = ::write(st.fd(), line.data(), line.size());
        (void)ignored;
    } catch (...) {
    }
}

}  // namespace o365
