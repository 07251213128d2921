// o365relayctl postfix-config [--check]: prints the main.cf lines, the
// master.cf entries and the sender transport map that follow from
// o365relay.conf (ctl/postfix_config.hpp); with --check, asks the running
// Postfix (postconf -n, postconf -M, postmap -q per sender) and lists every
// difference with the line to change and the command that changes it.
// Exit 0 no difference (or printed), 1 differences, 64 usage, 75 postconf or
// postmap not runnable, 78 the config file is invalid. Runs postconf/postmap
// without a shell (posix_spawnp, argv); prints no secret (o365relay.conf names
// only paths). Single-threaded.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "ctl.hpp"
#include "error.hpp"
#include "postfix_config.hpp"
#include "unique_fd.hpp"

extern char** environ;

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl postfix-config [--check] [-c FILE] [-C DIR] [--map TYPE:PATH]\n"
    "                                   [--section main|master|map]\n"
    "Prints the Postfix configuration that follows from o365relay.conf: the main.cf\n"
    "lines (milter, sender_dependent_default_transport_maps, each account's transport\n"
    "limits), one master.cf pipe(8) entry per account (o365-ACCOUNT, maxproc = the\n"
    "mailbox's concurrency at Microsoft) and the sender transport map.\n"
    "  --check          compare with the running Postfix (postconf -n, postconf -M,\n"
    "                   postmap -q for every sender) and list each difference with\n"
    "                   the line to change and the command that changes it\n"
    "  -c FILE          o365relay.conf (default: the global -c, else\n"
    "                   /etc/o365relay/o365relay.conf)\n"
    "  -C, --postfix-config-dir DIR\n"
    "                   Postfix configuration directory (postconf -c DIR; default\n"
    "                   /etc/postfix)\n"
    "  --map TYPE:PATH  the sender transport map (default hash:DIR/o365relay_sender_transport)\n"
    "  --section S      print only main, master or map, without comments\n"
    "The transport path in master.cf is the global -T (default /usr/sbin/o365relay-transport).\n"
    "Exit 0 no difference, 1 differences, 75 postconf not runnable, 78 bad config.\n";

struct Options {
    bool check = false;
    std::string config_path;
    std::string postfix_dir;
    std::string map;
    std::string section;
};

struct Output {
    int status = -1;  // exit status; -1: could not run or killed
    std::string out, err;
};

// Runs argv (no shell) and collects its stdout and stderr.
Output run(const std::vector<std::string>& argv) {
    Output r;
    int out[2], err[2];
    if (::pipe(out) != 0) return r;
    UniqueFd out_r(out[0]), out_w(out[1]);
    if (::pipe(err) != 0) return r;
    UniqueFd err_r(err[0]), err_w(err[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
    std::vector<char*> cargv;
    for (const auto& a : argv)
        cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    pid_t pid;
    int rc = posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    out_w.reset();
    err_w.reset();
    if (rc != 0) {
        r.err = argv[0] + ": " + std::strerror(rc);
        return r;
    }
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    int open_fds = 2;
    while (open_fds > 0) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

std::vector<std::string> postfix_tool(const std::string& tool, const Options& o) {
    std::vector<std::string> argv = {tool};
    if (!o.postfix_dir.empty()) argv.insert(argv.end(), {"-c", o.postfix_dir});
    return argv;
}

template <typename... More>
std::vector<std::string> with(std::vector<std::string> argv, More... more) {
    (argv.push_back(more), ...);
    return argv;
}

// Thrown when a Postfix tool cannot be run: exit 75.
struct ToolFailed {
    std::string what;
};

std::string must_run(const std::vector<std::string>& argv) {
    Output r = run(argv);
    if (r.status != 0) {
        std::string cmd;
        for (const auto& a : argv)
            cmd += (cmd.empty() ? "" : " ") + a;
        throw ToolFailed{cmd + ": " + (r.err.empty() ? "failed" : r.err)};
    }
    return r.out;
}

// --- steps --------------------------------------------------------------------

int parse_options(const Globals& g, const Args& args, Options& o) {
    o.config_path = g.config_path;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        bool has_value = i + 1 < args.size();
        if (a == "--check") {
            o.check = true;
        } else if (a == "-c" && has_value) {
            o.config_path = args[++i];
        } else if ((a == "-C" || a == "--postfix-config-dir") && has_value) {
            o.postfix_dir = args[++i];
        } else if (a == "--map" && has_value && args[i + 1].find(':') != std::string::npos) {
            o.map = args[++i];
        } else if (a == "--section" && has_value &&
                   (args[i + 1] == "main" || args[i + 1] == "master" || args[i + 1] == "map")) {
            o.section = args[++i];
        } else {
            std::fprintf(stderr, "o365relayctl postfix-config: bad argument '%s'\n%s", a.c_str(),
                         kHelp);
            return kUsage;
        }
    }
    return kOk;
}

// The site: the paths o365relay.conf does not know. The queue directory comes
// from Postfix when postconf runs (a relative milter socket depends on it).
PostfixSite site_of(const Globals& g, const Options& o) {
    PostfixSite site;
    if (!o.postfix_dir.empty()) site.config_dir = o.postfix_dir;
    site.config_path = std::filesystem::absolute(o.config_path).lexically_normal().string();
    site.transport_path = g.transport_path;
    site.map = o.map;
    Output q = run(with(postfix_tool("postconf", o), "-h", "queue_directory"));
    if (q.status == 0) {
        std::string dir = q.out.substr(0, q.out.find('\n'));
        if (!dir.empty()) site.queue_directory = dir;
    }
    return site;
}

int print(const PostfixConfig& p, const Options& o) {
    if (o.section == "main") {
        std::fputs(format_main(p).c_str(), stdout);
    } else if (o.section == "master") {
        std::fputs(format_master(p).c_str(), stdout);
    } else if (o.section == "map") {
        std::fputs(format_map(p).c_str(), stdout);
    } else {
        std::printf("# Postfix configuration for o365relay from %s\n",
                    std::filesystem::absolute(o.config_path).lexically_normal().c_str());
        std::printf(
            "# (o365relayctl postfix-config --check compares it with the running Postfix)\n\n");
        std::fputs(format_all(p).c_str(), stdout);
    }
    return kOk;
}

// The first line of a Postfix tool's stderr that says fatal: or error:.
std::string failure_line(const std::string& err) {
    std::size_t start = 0;
    while (start < err.size()) {
        std::size_t end = err.find('\n', start);
        if (end == std::string::npos) end = err.size();
        std::string line = err.substr(start, end - start);
        if (line.find("fatal:") != std::string::npos || line.find("error:") != std::string::npos)
            return line;
        start = end + 1;
    }
    return "";
}

// postmap -q KEY for each wanted key, in each map the running Postfix names
// (the first that has the key wins, as in Postfix).
void query_map(const PostfixConfig& p, const Options& o, RunningPostfix& r) {
    std::string maps = p.map;
    if (auto it = r.main.find("sender_dependent_default_transport_maps"); it != r.main.end())
        maps = it->second;
    std::vector<std::string> names;
    std::string cur;
    for (char c : maps + ",") {
        if (c == ',' || c == ' ' || c == '\t') {
            if (!cur.empty()) names.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    for (const auto& line : p.map_lines) {
        std::optional<std::string> found;
        for (const auto& map : names) {
            Output q = run(with(postfix_tool("postmap", o), "-q", line.key, map));
            if (q.status < 0) throw ToolFailed{"postmap: " + q.err};
            if (q.status == 0) {
                found = q.out.substr(0, q.out.find('\n'));
                break;
            }
            // Not found is exit 1 and silent; a map that cannot be read is
            // exit 1 with "fatal:" or "error:" (warnings are no failure).
            if (std::string e = failure_line(q.err); !e.empty()) {
                r.map_error = map + ": " + e;
                return;
            }
        }
        r.map[line.key] = found;
    }
}

int check(const PostfixConfig& p, const Options& o) {
    // 1. ask the running Postfix
    RunningPostfix r;
    r.main = parse_postconf_n(must_run(with(postfix_tool("postconf", o), "-n")));
    r.master = parse_postconf_m(must_run(with(postfix_tool("postconf", o), "-M")));
    query_map(p, o, r);
    // 2. compare and 3. report
    auto diffs = compare(p, r);
    for (const auto& d : diffs)
        std::printf("%s\n    want: %s\n    fix:  %s\n", d.what.c_str(), d.want.c_str(),
                    d.fix.c_str());
    if (diffs.empty()) {
        std::printf(
            "Postfix (%s) agrees with %s: %zu main.cf parameters, %zu master.cf entries, "
            "%zu map entries\n",
            p.config_dir.c_str(), o.config_path.c_str(), p.main.size(), p.master.size(),
            p.map_lines.size());
        return kOk;
    }
    std::printf("%zu difference%s; after fixing: postfix reload\n", diffs.size(),
                diffs.size() == 1 ? "" : "s");
    return kFailed;
}

}  // namespace

int cmd_postfix_config(const Globals& g, const Args& args) {
    if (wants_help(args)) {
        std::fputs(kHelp, stdout);
        return kOk;
    }
    Options o;
    if (int rc = parse_options(g, args, o); rc != kOk) return rc;
    try {
        auto cfg = load_config(o.config_path);
        PostfixConfig p = postfix_config(*cfg, site_of(g, o));
        return o.check ? check(p, o) : print(p, o);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "o365relayctl: %s\n", e.what());
        return kConfig;
    } catch (const ToolFailed& e) {
        std::fprintf(stderr, "o365relayctl: cannot ask Postfix: %s", e.what.c_str());
        if (e.what.empty() || e.what.back() != '\n') std::fputc('\n', stderr);
        return kTempfail;
    }
}

}  // namespace o365::ctl
