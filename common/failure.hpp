// failure: what stopped a delivery, as a value. Produced by the SMTP client
// (smtp_client.hpp), the Graph client (graph_client.hpp) and the transport
// (token, config, accounts); judged by
// delivery_status.hpp's decide(), the one place that says temporary or
// permanent. Plain values, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"
#include "smtp_reply.hpp"

namespace o365 {

// The stages of an SMTP delivery, in order (smtp_client.hpp's state machine),
// then the requests of a Graph delivery (graph_client.hpp).
enum class Stage {
    none,  // before any connection (local failures)
    connect,
    greeting,
    ehlo,
    starttls,
    tls_handshake,
    ehlo_after_tls,
    auth,
    mail_from,
    rcpt_to,
    data,             // the DATA command and its 354
    sending_message,  // the message bytes
    end_of_data,      // "." and the final reply
    quit,
    done,
    graph_sendmail,  // POST /users/{m}/sendMail (the message)
    graph_create,    // POST /users/{m}/messages (the draft, with the message)
    graph_patch,     // PATCH /users/{m}/messages/{id} (the draft's recipients)
    graph_send,      // POST /users/{m}/messages/{id}/send
};

// A stage of a Graph delivery.
inline bool is_graph_stage(Stage s) noexcept {
    return s >= Stage::graph_sendmail;
}

// For messages: "connect", "EHLO", "RCPT TO", "end of data", ...
std::string_view stage_name(Stage s) noexcept;
// The command a reply at this stage answers: "RCPT TO", "end of DATA", "" for
// none; for a Graph stage the request: "sendMail", "draft creation", ...
std::string_view stage_command(Stage s) noexcept;

enum class Cause {
    server_reply,          // the server refused: `reply` holds its reply
    graph_reply,           // Graph answered with an error: http_status, graph_code, graph_message
    throttled,             // Graph throttles the account (429 Retry-After): no request made
    message_too_big,       // larger than the method accepts (Graph: 3 MB); nothing sent
    resolve,               // the server's host name could not be resolved
    connect,               // no address of the server accepted a connection
    lost_connection,       // the server closed or reset the connection
    timeout,               // connect/command/data timeout
    deadline,              // the overall [smtp] deadline
    tls,                   // TLS handshake or certificate verification failed
    protocol,              // malformed or unexpected reply, data after STARTTLS
    starttls_unavailable,  // the server does not offer STARTTLS: nothing sent in clear
    auth_unavailable,      // the server does not offer AUTH XOAUTH2 after STARTTLS
    smtputf8_unsupported,  // an address needs SMTPUTF8 and the server lacks it
    message_input,         // reading or spooling the message from stdin failed
    token,                 // no access token (error_class: temporary or configuration)
    usage,                 // bad command line from pipe(8)
    config,                // the configuration file is unusable
    account_mismatch,      // -n ACCOUNT may not send as the envelope sender
    no_account,            // no account may send as the envelope sender
    null_sender_refused,   // empty sender and null_sender = reject / no null_sender_account
    invalid_sender,     // the envelope sender can never be used (control character, too long, ...)
    invalid_recipient,  // a recipient can never be delivered to (no '@', too long, ...)
    internal,           // an unexpected error in o365relay itself
};

struct Failure {
    Cause cause = Cause::internal;
    Stage stage = Stage::none;
    std::optional<SmtpReply> reply;  // set for Cause::server_reply
    std::string detail;              // local causes: the reason, one line
    std::string peer;                // "smtp.office365.com[52.96.0.1]:587" when connected
    ErrorClass error_class = ErrorClass::temporary;  // Cause::token: the token error's class
    bool after_refresh = false;  // AUTH failed again after a forced token refresh
    // Cause::server_reply at RCPT TO: other recipients of the same delivery were
    // accepted (the delivery is all-or-nothing: nothing was sent to them).
    // Cause::invalid_recipient: other recipients of the delivery are valid.
    bool others_accepted = false;
    std::string recipient;  // the recipient a RCPT TO reply or invalid_recipient is about
    // Cause::graph_reply: the HTTP status and Graph's error code and message
    // ({"error":{"code":..,"message":..}}; empty when the answer had none).
    long http_status = 0;
    std::string graph_code;
    std::string graph_message;
};

// A failure without a server reply.
inline Failure local_failure(Cause cause, Stage stage, std::string detail, std::string peer = {}) {
    Failure f;
    f.cause = cause;
    f.stage = stage;
    f.detail = std::move(detail);
    f.peer = std::move(peer);
    return f;
}

}  // namespace o365
