// o365relayctl: the administrator's tool. Thin dispatch; the commands live in
// ctl/cmd_*.cpp. See ctl.hpp for exit statuses.
#include <getopt.h>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "ctl.hpp"
#include "log.hpp"

namespace {

const char* kUsageText =
    "usage: o365relayctl [-c FILE] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  check [ACCOUNT]              validate the config; for each account (or one) get a token,\n"
    "                               connect, STARTTLS, authenticate and QUIT without sending;\n"
    "                               print what worked and, for what failed, the cause and the fix\n"
    "  status [ACCOUNT]             per account: token state, deliveries sent/deferred/bounced,\n"
    "                               throttles, limits used, last error and its fix\n"
    "  metrics                      the same for Prometheus (node_exporter textfile collector)\n"
    "  token status [ACCOUNT]       expiry, last refresh and last error from the token cache;\n"
    "                               exit 1 when an account has no usable token\n"
    "  token refresh ACCOUNT        get a new token now (ignores the failure backoff)\n"
    "  login ACCOUNT                device-code sign-in for a delegated account; stores the\n"
    "                               refresh token in the cache\n"
    "  send-test [-f SENDER] ACCOUNT RECIPIENT\n"
    "                               send a short test message through o365relay-transport\n"
    "                               (from SENDER: tests Exchange's Send As permission)\n"
    "  postfix-config [--check]     print the Postfix main.cf, master.cf and sender map that\n"
    "                               follow from the config; --check compares the running Postfix\n"
    "\n"
    "Options:\n"
    "  -c FILE          config file (default /etc/o365relay/o365relay.conf)\n"
    "  -T PATH          transport binary for send-test (default /usr/sbin/o365relay-transport)\n"
    "  -h, --help       this help; COMMAND --help for a command's help\n"
    "  --version        print the version and exit\n"
    "\n"
    "Exit status: 0 ok, 1 a check failed, 64 usage error, 75 temporary failure (try again),\n"
    "78 configuration error. `check` and `token status` exit 1 when an account has no\n"
    "usable token or its last token refresh failed (for monitoring).\n";

// The global options before COMMAND (getopt_long, stopping at COMMAND).
// Returns the index of COMMAND, or an exit status in `exit_status` when the
// options alone decide (--help, --version: 0 on stdout; bad option: 64).
int parse_globals(int argc, char** argv, o365::ctl::Globals& g, int& exit_status) {
    using namespace o365::ctl;
    enum { kVersion = 256 };
    static const struct option kLong[] = {
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, kVersion},
        {nullptr, 0, nullptr, 0},
    };
    exit_status = -1;
    for (int opt; (opt = getopt_long(argc, argv, "+c:T:h", kLong, nullptr)) != -1;) {
        switch (opt) {
            case 'c':
                g.config_path = optarg;
                break;
            case 'T':
                g.transport_path = optarg;
                break;
            case 'h':
                std::fputs(kUsageText, stdout);
                exit_status = kOk;
                return argc;
            case kVersion:
                std::printf("o365relayctl %s\n", O365_VERSION);
                exit_status = kOk;
                return argc;
            default:  // getopt_long named the option on stderr
                std::fputs(kUsageText, stderr);
                exit_status = kUsage;
                return argc;
        }
    }
    return optind;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace o365::ctl;
    Globals g;
    int status = -1;
    int i = parse_globals(argc, argv, g, status);
    if (status >= 0) return status;
    if (i >= argc) {
        std::fputs(kUsageText, stderr);
        return kUsage;
    }
    std::string cmd = argv[i++];
    Args args(argv + i, argv + argc);
    // Diagnostics of the library go to stderr, never stdout.
    o365::log_init("stderr", o365::LogLevel::warning, "o365relayctl");
    try {
        if (cmd == "check") return cmd_check(g, args);
        if (cmd == "token") return cmd_token(g, args);
        if (cmd == "login") return cmd_login(g, args);
        if (cmd == "send-test") return cmd_send_test(g, args);
        if (cmd == "status") return cmd_status(g, args);
        if (cmd == "metrics") return cmd_metrics(g, args);
        if (cmd == "postfix-config") return cmd_postfix_config(g, args);
        if (cmd == "help") {
            std::fputs(kUsageText, stdout);
            return kOk;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "o365relayctl: %s\n", o365::redact(e.what()).c_str());
        return kTempfail;
    }
    std::fprintf(stderr, "o365relayctl: unknown command '%s'\n%s", cmd.c_str(), kUsageText);
    return kUsage;
}
