// args: the transport's command line, the pipe(8) contract of docs/design.md
// section "Transport command line":
//   o365relay-transport [-c FILE] -f SENDER [-q QUEUEID] [-n NEXTHOP] -- RCPT...
//   o365relay-transport --help | --version
//
// Contract: parsed with getopt_long(3) (POSIX mode: options end at "--").
// Options before "--" in any order, each at most once, as "-c FILE" or
// "-cFILE"; -f is required and may be empty (the null sender <>, passed by
// pipe(8) as an empty argument with `null_sender=`); "--" is required and at
// least one recipient follows it. Everything after "--" is a recipient, even
// when it starts with '-'. -c, -q and -n may not contain a control character
// (CR, LF, NUL, TAB...). The sender and the recipients are NOT judged here:
// an address that can never be delivered is the message's fault, not a usage
// error, and fails permanently (envelope.hpp, checked before anything is
// sent). -n may name an account or be Postfix's default next hop (see
// delivery.hpp). --help or --version, given ALONE, select TransportMode::help
// or ::version (print and exit 0, never a delivery); given with anything else
// they are a usage error.
//
// Failure: UsageError (class configuration) naming the problem; the transport
// answers it with a TEMPORARY 4.3.5 (exit 75): a usage error is a mismatch
// between master.cf and o365relay that an administrator fixes, and Postfix
// must not bounce the mail meanwhile (it would with EX_USAGE 64).
// NOT thread-safe: getopt_long keeps global state (optind); call it from one
// thread (main) at a time. Nothing is printed (opterr is cleared).
#pragma once

#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"

namespace o365 {

class UsageError : public Error {
  public:
    explicit UsageError(const std::string& m) : Error(ErrorClass::configuration, m) {}
};

enum class TransportMode { deliver, help, version };

struct TransportArgs {
    TransportMode mode = TransportMode::deliver;
    std::string config_path = kDefaultConfigPath;
    std::string sender;  // "" for the null sender
    std::string queue_id;
    std::string nexthop;
    std::vector<std::string> recipients;
};

// argv[0] is skipped.
TransportArgs parse_transport_args(const std::vector<std::string>& argv);

inline constexpr const char* kTransportUsage =
    "usage: o365relay-transport [-c FILE] -f SENDER [-q QUEUEID] [-n NEXTHOP] -- RECIPIENT...";

// The text --help prints on stdout.
inline constexpr const char* kTransportHelp =
    "usage: o365relay-transport [-c FILE] -f SENDER [-q QUEUEID] [-n NEXTHOP] -- RECIPIENT...\n"
    "       o365relay-transport --help | --version\n"
    "\n"
    "Postfix pipe(8) delivery agent: reads the message on stdin and submits it to\n"
    "Microsoft 365 with OAuth 2.0. Run by Postfix from master.cf, not by hand\n"
    "(o365relayctl send-test sends a test message).\n"
    "\n"
    "Options:\n"
    "  -c FILE      config file (default /etc/o365relay/o365relay.conf)\n"
    "  -f SENDER    envelope sender, ${sender}; an empty argument is the null sender <>\n"
    "  -q QUEUEID   Postfix queue id, ${queue_id}, for the log\n"
    "  -n NEXTHOP   Postfix next hop, ${nexthop}: the account of o365:ACCOUNT\n"
    "  --           ends the options; every following argument is a recipient\n"
    "  --help       this help (alone), exit 0\n"
    "  --version    the version (alone), exit 0\n"
    "\n"
    "Prints one status line and exits 0, 75 (deferred), 65, 67 or 69 (bounced).\n"
    "A bad command line defers with 4.3.5 (exit 75).\n";

}  // namespace o365
