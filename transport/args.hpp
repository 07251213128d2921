// args: the transport's command line, the pipe(8) contract of docs/design.md
// section "Transport command line":
//   o365relay-transport [-c FILE] -f SENDER [-q QUEUEID] [-n NEXTHOP] -- RCPT...
//
// Contract: options before "--" in any order, each at most once, as "-c FILE"
// or "-cFILE"; -f is required and may be empty (the null sender <>, passed by
// pipe(8) as an empty argument with `null_sender=`); "--" is required and at
// least one recipient follows it. Everything after "--" is a recipient, even
// when it starts with '-'. -c, -q and -n may not contain a control character
// (CR, LF, NUL, TAB...). The sender and the recipients are NOT judged here:
// an address that can never be delivered is the message's fault, not a usage
// error, and fails permanently (envelope.hpp, checked before anything is
// sent). -n may name an account or be Postfix's default next hop (see
// delivery.hpp).
//
// Failure: UsageError (class configuration) naming the problem; the transport
// answers it with a TEMPORARY 4.3.5 (exit 75): a usage error is a mismatch
// between master.cf and o365relay that an administrator fixes, and Postfix
// must not bounce the mail meanwhile (it would with EX_USAGE 64).
// Pure function, thread-safe.
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

struct TransportArgs {
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

}  // namespace o365
