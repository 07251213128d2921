// delivery_status: THE policy that says whether a failed delivery is
// temporary (Postfix retries) or permanent (Postfix bounces), and what the
// transport prints for Postfix. Every such decision in o365relay goes through
// decide(); tests/unit/test_delivery_status.cpp holds the table.
//
// Contract (docs/design.md section "Temporary or permanent"):
// - Temporary (exit 75 EX_TEMPFAIL): network errors, timeouts, the deadline,
//   TLS failures, no STARTTLS, any 4xx, every reply before MAIL FROM (greeting,
//   EHLO, STARTTLS, AUTH: incl. 535 after the one forced token refresh and
//   535 5.7.139 SMTP AUTH disabled), token problems (Entra unreachable, 5xx,
//   429, credentials refused: an administrator can fix them), local
//   configuration problems (usage, config file, -n naming an account that is
//   not configured or that may not send as the sender: 4.3.5, "our mistake
//   defers"), and the account-level blocks and throttles even when sent as
//   5xx: 5.1.8 bad outbound sender, 5.2.0 with SubmissionQuotaExceeded, 5.2.2
//   with STOREDRV.Submission.Exception:QuotaExceededException (the SENDING
//   mailbox's storage, its Sent Items, is full: no message of the account can
//   be sent until it is cleaned up), 5.2.251/253/254/255 (Microsoft's temporary
//   blocking after repeated errors), 5.2.252 WITHOUT "SendAsDenied" (the same
//   throttle), 5.7.57 client not authenticated, 5.7.705/5.7.708 tenant blocks.
//   A problem with the account never bounces the queue.
// - Permanent, only when the refusal belongs to this message: a recipient
//   refused at RCPT TO (5.1.x / 5.4.x: 67 EX_NOUSER; other 5xx: 69
//   EX_UNAVAILABLE), the sender refused at MAIL FROM (69), 5.2.252
//   SendAsDenied and 5.7.60 (no Send As right for THIS sender: other senders of
//   the account keep working, so it is treated like SendAsDenied: 69), content
//   refused after end of data (65 EX_DATAERR), too big (552, 5.3.4, 5.2.3: 65),
//   an address that needs SMTPUTF8 the server lacks (5.6.7, 69), a sender no
//   account may use (5.7.1, 69), an empty sender that may not be sent (5.7.1, 69).
// - Invalid envelope addresses (transport/envelope.hpp: a control character,
//   no '@', a local part over 64 octets, a domain over 255, a path over 256)
//   are PERMANENT: a recipient 5.1.3 (67 EX_NOUSER), the sender 5.1.7 (69).
//   No server accepts them, today or after any fix on our side or at
//   Microsoft, so deferring would only carry the message in the queue until
//   maximal_queue_lifetime (5 days) and bounce it then; a bounce now tells the
//   sender at once. Nothing is sent and no connection is made. An invalid
//   recipient among valid ones defers (4.1.3, all-or-nothing as below).
// - Several recipients: the delivery is all-or-nothing (see
//   transport/delivery.hpp). A permanent RCPT refusal while other recipients
//   were accepted is TEMPORARY (4.x.x), so that the accepted recipients are not
//   bounced with it; set o365_destination_recipient_limit = 1 to avoid this.
// - Microsoft Graph (Cause::graph_reply, docs/design.md section "Graph
//   delivery"), one table in delivery_status.cpp: 401 (after the one forced
//   token refresh) temporary; 403 ErrorAccessDenied, 404 ErrorInvalidUser /
//   MailboxNotEnabledForRESTAPI and ErrorQuotaExceeded are account-level:
//   temporary, with the fix; 403 ErrorSendAsDenied permanent 5.7.60 (69); 400
//   about a recipient permanent 5.1.x (67; temporary with several recipients,
//   all-or-nothing as above); 400 about the MIME content 5.6.0 (65); 413 and a
//   message over the 3 MB Graph accepts (Cause::message_too_big) 5.3.4 (65);
//   429 temporary (the account waits for Retry-After: Cause::throttled);
//   5xx, timeouts, connection errors, and a connection lost after the whole
//   request was sent: temporary. Any other answer: temporary 4.5.0. The
//   reply text is "host graph.microsoft.com[A]:443 said: HTTP 403
//   ErrorAccessDenied: Access is denied... (in reply to sendMail)".
// - 78 EX_CONFIG is never used: a local configuration error defers (4.3.5),
//   because Postfix would bounce on 78.
// - The status line starts with the enhanced code, which agrees with the exit
//   status: a 5xx classed temporary is printed as 4.x.x with the same subject
//   and detail. For a server reply the line carries the reply itself
//   ("host H[A]:587 said: 550 5.1.1 ... (in reply to RCPT TO command)"). One
//   line, no control characters, at most 1000 bytes.
// Pure function, thread-safe.
#pragma once

#include <string>

#include "failure.hpp"

namespace o365 {

// sysexits.h values used by the transport.
inline constexpr int kExOk = 0;
inline constexpr int kExDataErr = 65;
inline constexpr int kExNoUser = 67;
inline constexpr int kExUnavailable = 69;
inline constexpr int kExTempFail = 75;
inline constexpr int kExConfig = 78;  // not used: see above

struct Outcome {
    int exit_status = kExTempFail;
    std::string status_line;  // "4.4.2 lost connection with ...", one line

    bool temporary() const { return exit_status == kExTempFail; }
    // The enhanced code at the start of status_line.
    std::string dsn() const { return status_line.substr(0, status_line.find(' ')); }
};

// The one decision: temporary or permanent, and what to print.
Outcome decide(const Failure& failure);

// A 535 at AUTH other than 5.7.139 (SMTP AUTH disabled): the cached token may
// have been revoked, so one forced token refresh and one new connection may
// help (smtp_session.hpp does it, for the transport and `o365relayctl check`).
bool token_refresh_may_help(const Failure& failure);

// The outcome of a delivered message: exit 0, "2.0.0 host H said: 250 ...".
Outcome delivered(const SmtpReply& final_reply, const std::string& peer);

// A message Graph accepted: exit 0, "2.0.0 host H said: HTTP 202 Accepted (in
// reply to sendMail)".
Outcome delivered_by_graph(long http_status, Stage stage, const std::string& peer);

}  // namespace o365
