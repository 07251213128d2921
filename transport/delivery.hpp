// delivery: one delivery request of pipe(8), from the command line to the
// Outcome and the log lines (docs/design.md sections "Transport command line"
// and "Logs"). Steps: check the envelope, resolve the account, spool the
// message, deliver by the account's method (method.hpp: SMTP = token,
// authenticated session, transaction; Microsoft Graph = graph_client.hpp),
// map the outcome.
//
// Contract:
// - Envelope: an address that can never be delivered fails permanently before
//   anything else (envelope.hpp): nothing is read from Entra, no connection.
// - Account: `-n` NEXTHOP when it is a configured account (its `senders` must
//   include the envelope sender, else a TEMPORARY 4.3.5 naming account and
//   sender: Postfix and o365relay disagree, an administrator fixes it). A
//   NEXTHOP that names an account (nexthop_names_account()) that is not
//   configured (renamed or removed while mail for it is queued) also defers
//   with 4.3.5 and says what to fix: it is never bounced. Any other NEXTHOP
//   (empty, "[host]", "host:port", or the recipients' domain, which Postfix
//   passes when the route is a plain `o365:`) resolves the account from the
//   sender (accounts.hpp, the milter's resolver). A sender no account may
//   use: permanent 5.7.1. Empty sender <>: with null_sender = rewrite and
//   null_sender_account set, MAIL FROM is that account's mailbox and a header
//   From the account may not send as (Postfix's MAILER-DAEMON) is replaced by
//   the mailbox, display name kept; otherwise permanent 5.7.1.
// - Nothing is sent before the account is known and the message is spooled
//   (message_stream.hpp: size and 8-bit known before MAIL FROM).
// - Token from the TokenProvider (the shared TokenCache in production); every
//   token call gets the delivery's deadline ([smtp] deadline). The refresh
//   after a 535 at AUTH is smtp_session.hpp's rule (one forced refresh, one
//   new connection, then the cache is told); it happens before MAIL FROM, so
//   no message is ever sent twice by the transport.
// - Several recipients: ALL-OR-NOTHING in one transaction. If every recipient
//   is accepted the message is sent once to all; if any is refused nothing is
//   sent (smtp_client.hpp) and the outcome is temporary when any refusal is
//   temporary or some recipient was accepted, permanent only when every
//   recipient was refused permanently. No recipient is silently dropped and
//   none gets a wrong bounce, but a permanently refused recipient keeps the
//   others deferred until Postfix's queue lifetime ends: hence the recommended
//   o365_destination_recipient_limit = 1 (one exit status per recipient).
// - method = graph: the message goes through Microsoft Graph with the
//   account's Graph token, to exactly the envelope recipients (sendMail, or
//   the draft route when the headers name others); over 3 MB it is refused
//   permanently (5.3.4) before any request (graph_client.hpp).
// - Decisions temporary/permanent: only delivery_status.hpp's decide().
// - Log: one line per recipient per delivery attempt (see log_lines()).
// Not thread-safe (one delivery per process).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "accounts.hpp"
#include "args.hpp"
#include "config.hpp"
#include "delivery_status.hpp"
#include "smtp_client.hpp"
#include "token_provider.hpp"

namespace o365 {

struct DeliveryReport {
    Outcome outcome;
    std::string queue_id;
    std::string account;  // "" when none was resolved
    std::string relay;    // "host[addr]:port", "" when never connected
    // delays=a/b/c/d: a reading and spooling the message, b obtaining the
    // token, c connection set-up (connect .. AUTH, both attempts), d
    // transmission (MAIL FROM .. reply after end of data).
    double delays[4] = {0, 0, 0, 0};
    std::vector<std::string> recipients;
    std::optional<SmtpReply> final_reply;
    bool token_refreshed = false;

    // One line per recipient in Postfix's manner:
    // "QID: to=<r>, account=A, relay=R, delays=a/b/c/d, dsn=X, status=sent (reply)"
    std::vector<std::string> log_lines() const;
};

// Whether pipe(8)'s ${nexthop} names an account (o365:ACCOUNT in the sender
// map) rather than being Postfix's default next hop: not empty, not a
// "[host]" or "host:port" form, and not the domain of one of the recipients
// (what Postfix passes for a plain `o365:` route). Case-insensitive.
bool nexthop_names_account(std::string_view nexthop, const std::vector<std::string>& recipients);

// Runs one delivery: checks the envelope, resolves the account, spools
// `message_fd`, gets the token, sends. Never throws: every failure is in the report's outcome.
DeliveryReport deliver(const Config& config, const Resolver& resolver, TokenProvider& tokens,
                       const TransportArgs& args, int message_fd);

}  // namespace o365
