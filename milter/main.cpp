// o365relay-milter: the milter daemon (DESIGN.md section 6).
//
//   o365relay-milter [-c FILE]            run in the foreground (systemd)
//   o365relay-milter [-c FILE] --check-config
//                                        validate FILE: exit 0, or 78 with the
//                                        error on stderr
//
// Start-up: load the config (a bad file: the error on stderr, exit 78), open
// the socket from [milter] socket (unix:/path: an old socket is removed, the new
// one gets [milter] socket_mode and the [relay] user as owner; inet:PORT@HOST),
// then, when started as root, drop to the [relay] user (user = root keeps root,
// with a warning; a user that does not exist is a configuration error, 78).
// SIGHUP reloads the config atomically (a bad file keeps the old config and the
// log says why; messages in flight finish under the config they started with).
// SIGTERM/SIGINT stop cleanly through libmilter (as smfi_stop()); the rate
// counters are saved to <state_dir>/milter-rate.json and loaded at start.
#include <grp.h>
#include <libmilter/mfapi.h>
#include <pwd.h>
#include <sys/stat.h>
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

namespace {

constexpr int kExConfig = 78;
constexpr int kExSoftware = 70;
constexpr int kExUsage = 64;

void usage() {
    std::cerr << "usage: o365relay-milter [-c FILE] [--check-config]\n";
}

std::string socket_path(const std::string& spec) {
    for (const char* p : {"unix:", "local:"})
        if (spec.rfind(p, 0) == 0) return spec.substr(std::strlen(p));
    return {};
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

// 1. The command line. Throws Exit (0 for --help, 64 for a bad argument).
Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-c" && i + 1 < argc) {
            o.config_path = argv[++i];
        } else if (a == "--check-config") {
            o.check_only = true;
        } else {
            usage();
            throw Exit{a == "-h" || a == "--help" ? 0 : kExUsage};
        }
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

    // 5. The milter socket, as root: an old socket removed, mode and owner set.
    //    Throws Exit (78 for a bad socket, 70 when libmilter refuses the filter).
    void open_socket() {
        if (smfi_setconn(const_cast<char*>(spec_.c_str())) != MI_SUCCESS) {
            std::cerr << "o365relay-milter: [milter] socket: libmilter refuses '" << spec_ << "'\n";
            throw Exit{kExConfig};
        }
        if (!o365::register_filter(runtime_, "o365relay-milter")) throw Exit{kExSoftware};
        check_socket_directory();
        mode_t old_mask = umask(0177);  // no window with a looser mode
        int opened = smfi_opensocket(true /* remove an old socket */);
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
        if (!path_.empty()) ::unlink(path_.c_str());
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
