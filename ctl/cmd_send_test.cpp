// o365relayctl send-test ACCOUNT RECIPIENT: runs o365relay-transport as pipe(8)
// would, with a short generated message, and reports its status line.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "address.hpp"
#include "ctl.hpp"
#include "hints.hpp"
#include "unique_fd.hpp"

namespace o365::ctl {

namespace {

const char* kHelp =
    "usage: o365relayctl [-T TRANSPORT] send-test [-f SENDER] ACCOUNT RECIPIENT\n"
    "Sends a short test message from ACCOUNT's mailbox (or from SENDER, one of the\n"
    "account's senders: tests Exchange's Send As permission) to RECIPIENT through\n"
    "o365relay-transport (the same path Postfix uses), and prints the transport's\n"
    "status line and, for a known refusal, the fix.\n"
    "Exit 0 delivered, 75 deferred (temporary), 1 refused, 64 usage, 78 bad config.\n";

std::string make_message(const Account& a, const std::string& sender, const std::string& rcpt) {
    char host[256] = "localhost";
    ::gethostname(host, sizeof host - 1);
    char date[64];
    std::time_t now = std::time(nullptr);
    struct tm tmv;
    ::localtime_r(&now, &tmv);
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tmv);
    return "From: o365relay test <" + sender + ">\nTo: <" + rcpt +
           ">\nSubject: o365relay test message from " + host + "\nDate: " + date +
           "\nMessage-ID: <o365relay-test." + std::to_string(now) + "." +
           std::to_string(::getpid()) + "@" + host +
           ">\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
           "This is a test message sent by `o365relayctl send-test " +
           a.name + "` through o365relay-transport.\n";
}

}  // namespace

int cmd_send_test(const Globals& g, const Args& args) {
    if (wants_help(args)) {
        std::fputs(kHelp, stdout);
        return kOk;
    }
    // [-f SENDER] ACCOUNT RECIPIENT
    std::string sender;
    Args rest = args;
    if (rest.size() >= 2 && rest[0] == "-f") {
        sender = rest[1];
        rest.erase(rest.begin(), rest.begin() + 2);
    }
    if (rest.size() != 2) {
        std::fputs(kHelp, stderr);
        return kUsage;
    }
    for (const std::string* addr : {&rest[1], &sender}) {
        if ((addr == &sender && sender.empty()) || parse_address(*addr)) continue;
        std::fprintf(stderr, "o365relayctl: '%s' is not an address\n", addr->c_str());
        return kUsage;
    }
    auto cfg = load_or_report(g);
    if (!cfg) return kConfig;
    auto accounts = select_accounts(*cfg, rest[0]);
    if (accounts.empty()) return kUsage;
    const Account& a = *accounts[0];
    if (sender.empty()) sender = a.mailbox;
    const std::string& rcpt = rest[1];
    std::string msg = make_message(a, sender, rcpt);

    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) {
        std::perror("o365relayctl: pipe");
        return kTempfail;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("o365relayctl: fork");
        return kTempfail;
    }
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::close(in[0]);
        ::close(in[1]);
        ::close(out[0]);
        ::close(out[1]);
        std::string qid = "ctl" + std::to_string(::getpid());
        ::execl(g.transport_path.c_str(), g.transport_path.c_str(), "-c", g.config_path.c_str(),
                "-f", sender.c_str(), "-q", qid.c_str(), "-n", a.name.c_str(), "--", rcpt.c_str(),
                static_cast<char*>(nullptr));
        std::fprintf(stderr, "o365relayctl: cannot run %s: %s\n", g.transport_path.c_str(),
                     std::strerror(errno));
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    // A transport that exits before reading its input must not kill us with
    // SIGPIPE: its status line says why.
    std::signal(SIGPIPE, SIG_IGN);
    UniqueFd to_child(in[1]), from_child(out[0]);
    std::size_t off = 0;
    while (off < msg.size()) {
        ssize_t n = ::write(to_child.get(), msg.data() + off, msg.size() - off);
        if (n <= 0) break;  // the transport failed early; its status tells why
        off += static_cast<std::size_t>(n);
    }
    to_child.reset();
    std::string line;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(from_child.get(), buf, sizeof buf)) > 0)
        line.append(buf, n);
    int status = 0;
    ::waitpid(pid, &status, 0);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::printf("send-test %s (%s) -> %s: exit %d: %s\n", a.name.c_str(), sender.c_str(),
                rcpt.c_str(), rc, line.empty() ? "(no status line)" : line.c_str());
    if (rc == 0) return kOk;
    if (std::string fix = for_account(reply_fix(line, a.mailbox), a); !fix.empty()) {
        for (std::size_t p; (p = fix.find("SENDER")) != std::string::npos;)
            fix.replace(p, 6, sender);
        std::printf("  fix: %s\n", fix.c_str());
    }
    if (rc == 75 || rc == -1) return kTempfail;
    if (rc == 127) return kConfig;
    return kFailed;
}

}  // namespace o365::ctl
