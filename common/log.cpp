#include "log.hpp"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <ctime>
#include <mutex>
#include <vector>

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
    int fd = 2;
    std::vector<std::string> secrets;
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

void log_init(std::string_view target, LogLevel level, std::string_view ident) {
    LogState& st = state();
    std::lock_guard lk(st.mu);
    st.level = level;
    st.ident = std::string(ident);
    if (st.fd > 2) ::close(st.fd);
    st.fd = 2;
    if (target == "syslog") {
        st.target = LogState::Target::syslog;
        ::openlog(st.ident.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
    } else if (target.rfind("file:", 0) == 0) {
        std::string path(target.substr(5));
        int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd >= 0) {
            st.fd = fd;
            st.target = LogState::Target::file;
        } else {
            st.target = LogState::Target::stderr_;
        }
    } else {
        st.target = LogState::Target::stderr_;
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
        char stamp[64] = "";
        std::time_t now = std::time(nullptr);
        struct tm tmv;
        ::localtime_r(&now, &tmv);
        std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tmv);
        std::string line = std::string(stamp) + " " + st.host + " " + st.ident + "[" +
                           std::to_string(::getpid()) + "]: " + level_prefix(level) + clean + "\n";
        ssize_t ignored = ::write(st.fd, line.data(), line.size());
        (void)ignored;
    } catch (...) {
    }
}

}  // namespace o365
