// method: the seam between a delivery (delivery.cpp: envelope, account,
// spool, outcome) and the account's delivery method, which hands the spooled
// message to Microsoft 365: SMTP AUTH (method_smtp.cpp) or Microsoft Graph
// (method_graph.cpp) (docs/design.md sections "Transport command line" and
// "Graph delivery").
//
// Contract: a method gets the resolved account, the MAIL FROM address and the
// spool, and returns a MethodResult: delivered (the outcome to print), or the
// failures (one per refused recipient, or one), which delivery.cpp maps
// through decide(). A method never throws (beyond std::bad_alloc): token
// problems, connection errors and refusals are failures. Each method gets its
// tokens from the TokenProvider for its own audience (token_audience.hpp): a
// token is never sent to another service. A method fills the report's relay,
// delays b/c/d and token_refreshed.
// Not thread-safe (one delivery per process).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "accounts.hpp"
#include "args.hpp"
#include "config.hpp"
#include "delivery.hpp"
#include "delivery_status.hpp"
#include "failure.hpp"
#include "message_stream.hpp"
#include "token_provider.hpp"

namespace o365 {

// What every method reads and the report it fills.
struct MethodContext {
    const Config& config;
    const Resolver& resolver;
    TokenProvider& tokens;
    const TransportArgs& args;
    std::chrono::steady_clock::time_point deadline;
    DeliveryReport& rep;
};

// The message to hand over.
struct MethodInput {
    const Account& account;
    const std::string& mail_from;  // "" never: the null sender is already the account's mailbox
    MessageSpool& spool;
};

struct MethodResult {
    std::optional<Outcome> delivered;      // set when the message was accepted
    std::optional<SmtpReply> final_reply;  // SMTP: the reply after end of data
    std::vector<Failure> failures;         // when not delivered
};

using DeliveryMethodFn = MethodResult (*)(MethodContext& c, const MethodInput& in);

// SMTP: token, authenticated session (one refresh after a 535), transaction.
MethodResult deliver_by_smtp(MethodContext& c, const MethodInput& in);

// Microsoft Graph: graph_client.hpp's steps with the account's Graph token.
MethodResult deliver_by_graph(MethodContext& c, const MethodInput& in);

// The function of the account's method.
DeliveryMethodFn method_for(DeliveryMethod m);

}  // namespace o365
