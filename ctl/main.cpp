// o365relayctl: the administrator's tool. Thin dispatch; the commands live in
// ctl/cmd_*.cpp. See ctl.hpp for exit statuses.
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
    "  token status [ACCOUNT]       expiry, last refresh and last error from the token cache\n"
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
    "\n"
    "Exit status: 0 ok, 1 a check failed, 64 usage error, 75 temporary failure (try again),\n"
    "78 configuration error.\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace o365::ctl;
    Globals g;
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(kUsageText, stdout);
            return kOk;
        } else if ((a == "-c" || a == "-T") && i + 1 < argc) {
            (a == "-c" ? g.config_path : g.transport_path) = argv[++i];
        } else if (a.rfind("-", 0) == 0) {
            std::fprintf(stderr, "o365relayctl: unknown option %s\n%s", a.c_str(), kUsageText);
            return kUsage;
        } else {
            break;
        }
    }
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
