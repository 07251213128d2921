// delivery: one delivery request of pipe(8), from the command line to the
// Outcome and the log lines (DESIGN.md sections 4 and 7).
//
// Contract:
// - Account: `-n` when it names a configured account (its `senders` must
//   include the envelope sender, else a TEMPORARY 4.3.5 naming account and
//   sender: Postfix and o365relay disagree, an administrator fixes it); else
//   resolved from the sender (accounts.hpp, the milter's resolver). A sender no
//   account may use: permanent 5.7.1. Empty sender <>: with null_sender =
//   rewrite and null_sender_account set, MAIL FROM is that account's mailbox
//   and a header From the account may not send as (Postfix's MAILER-DAEMON) is
//   replaced by the mailbox, display name kept; otherwise permanent 5.7.1.
// - Nothing is sent before the account is known and the message is spooled
//   (message_stream.hpp: size and 8-bit known before MAIL FROM).
// - Token from the TokenProvider (the shared TokenCache in production). After
//   `535` at AUTH (except 5.7.139, which no token can fix) the token is
//   refreshed once (TokenCache::refresh(account, rejected)) and AUTH retried on
//   a NEW connection; a second failure defers. This is the only retry: it
//   happens before MAIL FROM, so no message is ever sent twice by the transport.
// - Several recipients: ALL-OR-NOTHING in one transaction. If every recipient
//   is accepted the message is sent once to all; if any is refused nothing is
//   sent (smtp_client.hpp) and the outcome is temporary when any refusal is
//   temporary or some recipient was accepted, permanent only when every
//   recipient was refused permanently. No recipient is silently dropped and
//   none gets a wrong bounce, but a permanently refused recipient keeps the
//   others deferred until Postfix's queue lifetime ends: hence the recommended
//   o365_destination_recipient_limit = 1 (one exit status per recipient).
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
#include "token_cache.hpp"

namespace o365 {

// Where tokens come from. Throws Error (temporary or configuration).
class TokenProvider {
  public:
    virtual ~TokenProvider() = default;
    virtual AccessToken get(const Account& account) = 0;
    virtual AccessToken refresh(const Account& account, const std::string& rejected) = 0;
};

class CacheTokenProvider : public TokenProvider {
  public:
    explicit CacheTokenProvider(TokenCache& cache) : cache_(cache) {}
    AccessToken get(const Account& a) override { return cache_.get(a); }
    AccessToken refresh(const Account& a, const std::string& rejected) override {
        return cache_.refresh(a, rejected);
    }

  private:
    TokenCache& cache_;
};

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

// The new value of a header From for a null-sender message sent by `account`:
// "Display Name <mailbox>" (display name or comment of `value` kept), or
// nullopt when the account may already send as that From address.
std::optional<std::string> rewrite_null_sender_from(const Resolver& resolver,
                                                    const Account& account, std::string_view value);

// Runs one delivery: resolves the account, spools `message_fd`, gets the token,
// sends. Never throws: every failure is in the report's outcome.
DeliveryReport deliver(const Config& config, const Resolver& resolver, TokenProvider& tokens,
                       const TransportArgs& args, int message_fd);

}  // namespace o365
