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

}  // namespace

int main(int argc, char** argv) {
    std::string config_path = o365::kDefaultConfigPath;
    bool check_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-c" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (a == "--check-config") {
            check_only = true;
        } else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else {
            usage();
            return kExUsage;
        }
    }

    std::shared_ptr<const o365::Config> config;
    ServiceUser user;
    try {
        config = o365::load_config(config_path);
        o365::Resolver check_resolver(config);
        user = lookup_user(config->relay.user);
    } catch (const std::exception& e) {
        std::cerr << "o365relay-milter: " << e.what() << "\n";
        return kExConfig;
    }
    if (check_only) {
        std::cout << "o365relay-milter: " << config_path << ": configuration ok ("
                  << config->accounts.size() << " accounts)\n";
        return 0;
    }

    // Before any thread exists (see signals.hpp).
    o365::block_signals();
    o365::log_init(config->relay.log, config->relay.log_level, "o365relay-milter");

    auto limiter = std::make_shared<o365::RateLimiter>();
    std::string counters = rate_file(*config);
    if (std::filesystem::exists(counters)) {
        try {
            limiter->load(counters);
            o365::log_info("rate counters loaded from " + counters);
        } catch (const std::exception& e) {
            o365::log_warning(std::string("rate counters not loaded: ") + e.what());
        }
    }

    o365::AccountServices services(config);
    auto make_policy = [&](std::shared_ptr<const o365::Config> c) {
        return std::make_shared<const o365::Policy>(std::move(c), limiter, services.health_probe());
    };
    o365::Runtime runtime;
    runtime.set_policy(make_policy(config));

    const std::string& spec = config->milter.socket;
    std::string path = socket_path(spec);
    if (smfi_setconn(const_cast<char*>(spec.c_str())) != MI_SUCCESS) {
        std::cerr << "o365relay-milter: [milter] socket: libmilter refuses '" << spec << "'\n";
        return kExConfig;
    }
    if (!o365::register_filter(runtime, "o365relay-milter")) return kExSoftware;
    if (!path.empty()) {
        auto dir = std::filesystem::path(path).parent_path();
        if (!dir.empty() && !std::filesystem::is_directory(dir)) {
            std::cerr << "o365relay-milter: [milter] socket: directory " << dir.string()
                      << " does not exist\n";
            return kExConfig;
        }
    }
    mode_t old_mask = umask(0177);  // no window with a looser mode
    int opened = smfi_opensocket(true /* remove an old socket */);
    umask(old_mask);
    if (opened != MI_SUCCESS) {
        std::cerr << "o365relay-milter: cannot open the milter socket " << spec << "\n";
        o365::log_error("cannot open the milter socket " + spec);
        return kExConfig;
    }
    if (!path.empty()) {
        if (chmod(path.c_str(), static_cast<mode_t>(config->milter.socket_mode)) != 0)
            o365::log_warning("chmod " + path + ": " + std::strerror(errno));
        // Owner only: the group stays the one the set-gid socket directory gave
        // (postfix), so that Postfix can connect.
        if (geteuid() == 0 && !user.is_root &&
            chown(path.c_str(), user.uid, static_cast<gid_t>(-1)) != 0)
            o365::log_warning("chown " + path + ": " + std::strerror(errno));
    }

    try {
        if (geteuid() == 0 && user.is_root)
            o365::log_warning("running as root: [relay] user = root");
        o365::drop_to_user(config->relay.user);
    } catch (const std::exception& e) {
        std::cerr << "o365relay-milter: " << e.what() << "\n";
        o365::log_error(e.what());
        return kExConfig;
    }

    o365::ReloadThread reloader([&] {
        std::shared_ptr<const o365::Config> fresh;
        try {
            fresh = o365::load_config(config_path);
            o365::Resolver check(fresh);
        } catch (const std::exception& e) {
            o365::log_error(std::string("reload failed, keeping the old configuration: ") +
                            e.what());
            return;
        }
        auto old = runtime.policy()->config_ptr();
        if (fresh->milter.socket != old->milter.socket || fresh->relay.user != old->relay.user)
            o365::log_warning("reload: [milter] socket and [relay] user take effect at restart");
        o365::log_init(fresh->relay.log, fresh->relay.log_level, "o365relay-milter");
        services.reload(fresh);
        runtime.set_policy(make_policy(fresh));
        o365::log_info("configuration reloaded from " + config_path + " (" +
                       std::to_string(fresh->accounts.size()) + " accounts)");
    });
    services.start();

    o365::log_info("started: socket " + spec + ", " + std::to_string(config->accounts.size()) +
                   " accounts, config " + config_path);
    int r = smfi_main();

    reloader.stop();
    services.stop();
    try {
        limiter->save(rate_file(runtime.policy()->config()));
    } catch (const std::exception& e) {
        o365::log_warning(std::string("rate counters not saved: ") + e.what());
    }
    if (!path.empty()) ::unlink(path.c_str());
    o365::log_info(r == MI_SUCCESS ? "stopped" : "stopped after a libmilter error");
    return r == MI_SUCCESS ? 0 : kExSoftware;
}
