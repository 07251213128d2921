// o365relay-milter: the milter daemon (docs/design.md section 6).
//
//   o365relay-milter [-c FILE]            run in the foreground (systemd)
//   o365relay-milter [-c FILE] --check-config
//                                        validate FILE: exit 0, or 78 with the
//                                        error on stderr
//   o365relay-milter --help | --version  print on stdout, exit 0
//
// Start-up: load the config (a bad file: the error on stderr, exit 78), open
// the socket from [milter] socket (unix:/path: a stale socket left by a crash,
// one that connect() finds nobody listening on, is removed; a socket another
// process answers on, or a file that is not a socket, stops the start with
// exit 78; the new socket gets [milter] socket_mode and the [relay] user as
// owner; inet:PORT@HOST),
// then, when started as root, drop to the [relay] user (user = root keeps root,
// with a warning; a user that does not exist is a configuration error, 78).
// SIGHUP reloads the config atomically (a bad file keeps the old config and the
// log says why; messages in flight finish under the config they started with).
// SIGTERM/SIGINT stop cleanly through libmilter (as smfi_stop()) and remove the
// unix socket; the rate counters are saved to <state_dir>/milter-rate.json and
// loaded at start.
#include <getopt.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "accounts.hpp"
#include "config.hpp"
#include "error.hpp"
#include "glue.hpp"
#include "health.hpp"
#include "log.hpp"
#include "policy.hpp"
#include "privileges.hpp"
#include "rate_limiter.hpp"
#include "signals.hpp"
#include "unique_fd.hpp"

namespace {

constexpr int kExConfig = 78;
constexpr int kExSoftware = 70;
constexpr int kExUsage = 64;

constexpr const char* kUsageText =
    "usage: o365relay-milter [-c FILE] [--check-config]\n"
    "       o365relay-milter --help | --version\n"
    "\n"
    "Options:\n"
    "  -c FILE, --config FILE  config file (default /etc/o365relay/o365relay.conf)\n"
    "  --check-config          validate the config file and exit (0, or 78 with the error)\n"
    "  -h, --help              this help, exit 0\n"
    "  --version               the version, exit 0\n";

std::string socket_path(const std::string& spec) {
    for (const char* p : {"unix:", "local:"})
        if (spec.rfind(p, 0) == 0) return spec.substr(std::strlen(p));
    return {};
}

// What lies at a unix socket's path before the milter binds it.
enum class SocketFile {
    absent,      // nothing: bind creates it
    stale,       // a socket nobody listens on (connect: ECONNREFUSED), left by a crash
    live,        // a socket something answers on: another milter
    not_socket,  // a file of another type: never removed
    unknown,     // cannot tell (lstat or connect failed otherwise)
};

struct SocketProbe {
    SocketFile state;
    std::string detail;  // for unknown: why
};

// Looks at `path` without changing it: lstat, then a non-blocking connect().
SocketProbe probe_socket_file(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0)
        return errno == ENOENT ? SocketProbe{SocketFile::absent, {}}
                               : SocketProbe{SocketFile::unknown, std::strerror(errno)};
    if (!S_ISSOCK(st.st_mode)) return {SocketFile::not_socket, {}};
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return {SocketFile::unknown, "path too long"};
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    o365::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return {SocketFile::unknown, std::string("socket: ") + std::strerror(errno)};
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
        return {SocketFile::live, {}};
    switch (errno) {
        case ECONNREFUSED:
            return {SocketFile::stale, {}};
        case EAGAIN:  // a listener with a full backlog is still a listener
        case EINPROGRESS:
            return {SocketFile::live, {}};
        default:
            return {SocketFile::unknown, std::string("connect: ") + std::strerror(errno)};
    }
}

struct ServiceUser {
    uid_t uid = 0;
    gid_t gid = 0;
    bool is_root = true;
};

// Throws o365::ConfigError when the user does not exist.
ServiceUser lookup_user(const std::string& name) {
    ServiceUser u;
    if (name == "root") return u;
    errno = 0;
    struct passwd* pw = getpwnam(name.c_str());
    if (!pw)
        throw o365::ConfigError("[relay] user: no such user '" + name + "'" +
                                (errno ? std::string(": ") + std::strerror(errno) : ""));
    u.uid = pw->pw_uid;
    u.gid = pw->pw_gid;
    u.is_root = u.uid == 0;
    return u;
}

std::string rate_file(const o365::Config& c) {
    return c.relay.state_dir + "/milter-rate.json";
}

// A start-up step that cannot go on: the exit status (the reason is already on
// stderr and, once logging is set up, in the log).
struct Exit {
    int status;
};

struct Options {
    std::string config_path = o365::kDefaultConfigPath;
    bool check_only = false;
};

// 1. The command line (getopt_long). Throws Exit: 0 after --help or
//    --version (printed on stdout), 64 for a bad argument (usage on stderr).
Options parse_options(int argc, char** argv) {
    enum { kCheckConfig = 256, kVersion };
    static const struct option kLong[] = {
        {"config", required_argument, nullptr, 'c'},
        {"check-config", no_argument, nullptr, kCheckConfig},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, kVersion},
        {nullptr, 0, nullptr, 0},
    };
    Options o;
    for (int opt; (opt = getopt_long(argc, argv, "+c:h", kLong, nullptr)) != -1;) {
        switch (opt) {
            case 'c':
                o.config_path = optarg;
                break;
            case kCheckConfig:
                o.check_only = true;
                break;
            case 'h':
                std::cout << kUsageText << std::flush;
                throw Exit{0};
            case kVersion:
                std::cout << "o365relay-milter " << O365_VERSION << "\n" << std::flush;
                throw Exit{0};
            default:  // getopt_long named the problem on stderr
                std::cerr << kUsageText;
                throw Exit{kExUsage};
        }
    }
    if (optind < argc) {
        std::cerr << "o365relay-milter: unexpected argument '" << argv[optind] << "'\n"
                  << kUsageText;
        throw Exit{kExUsage};
    }
    return o;
}

// A config file read and accepted, with the service user it names.
struct LoadedConfig {
    std::shared_ptr<const o365::Config> config;
    ServiceUser user;
};

// A config file loaded and checked the way start-up and reload check it (its
// resolver builds). Throws whatever load_config and Resolver throw.
std::shared_ptr<const o365::Config> load_checked(const std::string& path) {
    auto config = o365::load_config(path);
    o365::Resolver check(config);
    return config;
}

// 2. The config file and the service user. Throws Exit (78) with the error on stderr.
LoadedConfig read_config(const Options& o) {
    try {
        LoadedConfig l;
        l.config = load_checked(o.config_path);
        l.user = lookup_user(l.config->relay.user);
        return l;
    } catch (const std::exception& e) {
        std::cerr << "o365relay-milter: " << e.what() << "\n";
        throw Exit{kExConfig};
    }
}

// 3. --check-config: the verdict on stdout.
int report_config_ok(const Options& o, const o365::Config& c) {
    std::cout << "o365relay-milter: " << o.config_path << ": configuration ok ("
              << c.accounts.size() << " accounts)\n";
    return 0;
}

// The daemon's state from start to stop; each step is one member function.
class Daemon {
  public:
    Daemon(Options options, LoadedConfig loaded)
        : options_(std::move(options)),
          config_(std::move(loaded.config)),
          user_(loaded.user),
          spec_(config_->milter.socket),
          path_(socket_path(spec_)) {}

    // 4. Signals blocked before any thread exists (see signals.hpp), the log,
    //    the saved rate counters and the first policy.
    void prepare() {
        o365::block_signals();
        o365::log_init(config_->relay.log, config_->relay.log_level, "o365relay-milter");
        load_counters();
        services_ = std::make_unique<o365::AccountServices>(config_);
        runtime_.set_policy(make_policy(config_));
    }

    // 5. The milter socket, as root: a stale socket removed (never a live one),
    //    mode and owner set. Throws Exit (78 for a bad socket or one another
    //    milter answers on, 70 when libmilter refuses the filter).
    void open_socket() {
        if (smfi_setconn(const_cast<char*>(spec_.c_str())) != MI_SUCCESS) {
            std::cerr << "o365relay-milter: [milter] socket: libmilter refuses '" << spec_ << "'\n";
            throw Exit{kExConfig};
        }
        if (!o365::register_filter(runtime_, "o365relay-milter")) throw Exit{kExSoftware};
        check_socket_directory();
        remove_stale_socket();
        mode_t old_mask = umask(0177);  // no window with a looser mode
        int opened = smfi_opensocket(false /* remove_stale_socket() did, if it was stale */);
        umask(old_mask);
        if (opened != MI_SUCCESS) {
            std::cerr << "o365relay-milter: cannot open the milter socket " << spec_ << "\n";
            o365::log_error("cannot open the milter socket " + spec_);
            throw Exit{kExConfig};
        }
        set_socket_mode_and_owner();
    }

    // 6. From root to the [relay] user. Throws Exit (78).
    void drop_privileges() {
        try {
            if (geteuid() == 0 && user_.is_root)
                o365::log_warning("running as root: [relay] user = root");
            o365::drop_to_user(config_->relay.user);
        } catch (const std::exception& e) {
            std::cerr << "o365relay-milter: " << e.what() << "\n";
            o365::log_error(e.what());
            throw Exit{kExConfig};
        }
    }

    // 7. The SIGHUP reload thread and the token refresher.
    void start_refresher() {
        reloader_ = std::make_unique<o365::ReloadThread>([this] { reload(); });
        services_->start();
    }

    // 8. libmilter's loop, until SIGTERM/SIGINT. Returns smfi_main's result.
    int run() {
        o365::log_info("started: socket " + spec_ + ", " +
                       std::to_string(config_->accounts.size()) + " accounts, config " +
                       options_.config_path);
        return smfi_main();
    }

    // 9. Threads stopped, counters saved, the socket removed. The exit status.
    int stop(int milter_result) {
        if (reloader_) reloader_->stop();
        if (services_) services_->stop();
        try {
            limiter_->save(rate_file(runtime_.policy()->config()));
        } catch (const std::exception& e) {
            o365::log_warning(std::string("rate counters not saved: ") + e.what());
        }
        if (!path_.empty() && ::unlink(path_.c_str()) != 0 && errno != ENOENT)
            o365::log_warning("cannot remove the milter socket " + path_ + ": " +
                              std::strerror(errno));
        o365::log_info(milter_result == MI_SUCCESS ? "stopped" : "stopped after a libmilter error");
        return milter_result == MI_SUCCESS ? 0 : kExSoftware;
    }

  private:
    std::shared_ptr<const o365::Policy> make_policy(std::shared_ptr<const o365::Config> c) {
        return std::make_shared<const o365::Policy>(std::move(c), limiter_,
                                                    services_->health_probe());
    }

    void load_counters() {
        std::string counters = rate_file(*config_);
        if (!std::filesystem::exists(counters)) return;
        try {
            limiter_->load(counters);
            o365::log_info("rate counters loaded from " + counters);
        } catch (const std::exception& e) {
            o365::log_warning(std::string("rate counters not loaded: ") + e.what());
        }
    }

    void check_socket_directory() const {
        if (path_.empty()) return;
        auto dir = std::filesystem::path(path_).parent_path();
        if (!dir.empty() && !std::filesystem::is_directory(dir)) {
            std::cerr << "o365relay-milter: [milter] socket: directory " << dir.string()
                      << " does not exist\n";
            throw Exit{kExConfig};
        }
    }

    // A unix socket left by a crash is removed; anything else at the path
    // (another milter answering, a file that is not a socket) stops the start.
    void remove_stale_socket() const {
        if (path_.empty()) return;
        SocketProbe p = probe_socket_file(path_);
        std::string problem;
        switch (p.state) {
            case SocketFile::absent:
                return;
            case SocketFile::stale:
                if (::unlink(path_.c_str()) == 0 || errno == ENOENT) {
                    o365::log_info("removed the stale milter socket " + path_ +
                                   " (nothing listened on it)");
                    return;
                }
                problem = "cannot remove the stale socket: " + std::string(std::strerror(errno));
                break;
            case SocketFile::live:
                problem =
                    "another process (a running o365relay-milter?) answers on this socket; "
                    "stop it first, or give this instance another socket";
                break;
            case SocketFile::not_socket:
                problem = "the path exists and is not a socket; it is not removed";
                break;
            case SocketFile::unknown:
                problem = "cannot check the existing socket: " + p.detail;
                break;
        }
        std::cerr << "o365relay-milter: [milter] socket " << path_ << ": " << problem << "\n";
        o365::log_error("[milter] socket " + path_ + ": " + problem);
        throw Exit{kExConfig};
    }

    void set_socket_mode_and_owner() const {
        if (path_.empty()) return;
        if (chmod(path_.c_str(), static_cast<mode_t>(config_->milter.socket_mode)) != 0)
            o365::log_warning("chmod " + path_ + ": " + std::strerror(errno));
        // Owner only: the group stays the one the set-gid socket directory gave
        // (postfix), so that Postfix can connect.
        if (geteuid() == 0 && !user_.is_root &&
            chown(path_.c_str(), user_.uid, static_cast<gid_t>(-1)) != 0)
            o365::log_warning("chown " + path_ + ": " + std::strerror(errno));
    }

    // SIGHUP: the log file is reopened (logrotate), then a new config replaces
    // the old one atomically, or the old one stays.
    void reload() {
        o365::log_reopen();
        std::shared_ptr<const o365::Config> fresh;
        try {
            fresh = load_checked(options_.config_path);
        } catch (const std::exception& e) {
            o365::log_error(std::string("reload failed, keeping the old configuration: ") +
                            e.what());
            return;
        }
        auto old = runtime_.policy()->config_ptr();
        if (fresh->milter.socket != old->milter.socket || fresh->relay.user != old->relay.user)
            o365::log_warning("reload: [milter] socket and [relay] user take effect at restart");
        o365::log_init(fresh->relay.log, fresh->relay.log_level, "o365relay-milter");
        services_->reload(fresh);
        runtime_.set_policy(make_policy(fresh));
        o365::log_info("configuration reloaded from " + options_.config_path + " (" +
                       std::to_string(fresh->accounts.size()) + " accounts)");
    }

    Options options_;
    std::shared_ptr<const o365::Config> config_;
    ServiceUser user_;
    std::shared_ptr<o365::RateLimiter> limiter_ = std::make_shared<o365::RateLimiter>();
    std::unique_ptr<o365::AccountServices> services_;  // from prepare()
    o365::Runtime runtime_;
    std::string spec_;  // [milter] socket
    std::string path_;  // its file for unix:/local:, "" for inet:
    std::unique_ptr<o365::ReloadThread> reloader_;
};

}  // namespace

int main(int argc, char** argv) {
    try {
        Options options = parse_options(argc, argv);
        LoadedConfig loaded = read_config(options);
        if (options.check_only) return report_config_ok(options, *loaded.config);
        Daemon daemon(std::move(options), std::move(loaded));
        daemon.prepare();
        daemon.open_socket();
        daemon.drop_privileges();
        daemon.start_refresher();
        int result = daemon.run();
        return daemon.stop(result);
    } catch (const Exit& e) {
        return e.status;
    }
}
