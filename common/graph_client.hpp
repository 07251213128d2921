// graph_client: one delivery through Microsoft Graph v1.0 (docs/design.md
// section "Graph delivery"), the method of the accounts with method = graph.
// Numbered steps in send_by_graph():
//   1. read the spooled message once: its size without dot-stuffing and its
//      To/Cc/Bcc (graph_mime.hpp); over 3 MB: Cause::message_too_big, nothing
//      sent (graph_limits.hpp);
//   2. the route (graph_envelope.hpp): sendMail when the headers name exactly
//      the envelope recipients, else draft -> PATCH recipients -> send;
//   3. the Graph token: the account's Graph audience entry of the shared cache
//      (token_audience.hpp); the SMTP token is never sent to Graph;
//   4. the requests. Before each: the account's throttle file and one of its 4
//      concurrency slots (graph_throttle.hpp). The MIME body is base64-encoded
//      on the fly from the spool. A 401 refreshes the token once and repeats
//      the request (a second 401: TokenProvider::reject(), then temporary); a
//      429 writes the throttle file (Retry-After, 60 s when absent). After a
//      failure once the draft exists, the draft is deleted (best effort,
//      logged).
// Every wait and request is bounded by the delivery's deadline.
//
// Failure: values. The outcome holds a Failure for decide()
// (delivery_status.hpp): Cause::graph_reply with http_status, graph_code and
// graph_message and the Stage of the request; HTTP failures without an answer
// keep their cause (resolve, connect, tls, timeout, lost_connection: "lost
// connection with H after the whole request was sent (sendMail); the message
// may have been sent"); Cause::token, Cause::throttled, Cause::deadline.
// Never throws (beyond std::bad_alloc). Nothing here logs a token.
// Thread-safety: one call per delivery; the TokenProvider must be thread-safe
// if shared.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "deadline.hpp"
#include "failure.hpp"
#include "smtp_client.hpp"
#include "token_provider.hpp"

namespace o365 {

// The spooled message in wire form (CRLF lines, dot-stuffed) and a way back to its start.
struct GraphMessage {
    MessageSource& wire;
    std::function<void()> rewind;
};

struct GraphDelivery {
    const GraphSettings& settings;
    const std::string& state_dir;  // [relay] state_dir: throttle file and slots
    const Account& account;        // as configured (name, mailbox, method)
    TokenProvider& tokens;
    std::vector<std::string> recipients;  // the envelope recipients
    Deadline deadline;
    std::function<void(const std::string&)> note;  // an info log line (no secrets), may be empty
};

struct GraphResult {
    bool delivered = false;
    long http_status = 0;            // of the final answer (202 when delivered)
    Stage stage = Stage::none;       // the last request
    std::optional<Failure> failure;  // when not delivered
    std::string peer;                // "graph.microsoft.com[20.190.0.1]:443", "" before any answer
    bool draft_route = false;
    bool token_refreshed = false;
    double token_seconds = 0;     // obtaining tokens
    double transmit_seconds = 0;  // the requests
};

GraphResult send_by_graph(const GraphDelivery& delivery, GraphMessage message);

// "graph.microsoft.com" from "https://graph.microsoft.com/..." (for peer names).
std::string endpoint_host(const std::string& endpoint);

}  // namespace o365
