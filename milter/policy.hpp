// policy: the milter's rules ([policy] and [account] of docs/design.md section
// "Config file") as a plain class with no libmilter types. The glue feeds it
// the envelope, the macros and the relevant headers stage by stage and turns
// each Decision into a milter reply.
//
// Contract:
// - Policy is immutable (config + resolver + shared rate limiter + health probe);
//   one Policy per loaded config, shared by every Transaction started under it,
//   so a message in flight finishes under the config it started with.
// - Transaction holds one message's state. Call on_mail once, on_rcpt per
//   recipient, on_header per header, on_body per body chunk, on_eom once. Any
//   stage may return a final verdict (reject/tempfail); after one the
//   transaction is done and later calls return the same verdict without work.
//   Only on_rcpt refuses a single recipient (the message goes on without it).
//   Header edits and the envelope sender change come only from on_eom.
// - Rules, in order: null sender (<>: the null_sender_account sends it, or
//   reject; common/delivery/sender_rules.hpp, the transport's rule too); unknown sender
//   (reject 550 5.7.1 / tempfail 451 4.7.1 / accept); SIZE= over
//   max_message_size (552 5.3.4); account health (451 4.7.0 when the token
//   cache records that Entra refuses the account's credentials);
//   messages_per_minute already reached (451 4.7.1). The size rules (SIZE=,
//   while the body streams, at end of message) also refuse, with 552 5.3.4
//   and rule graph_size_limit, a message over the account's delivery method
//   limit (graph_limits.hpp method_size_limit: 3 MB for method = graph,
//   counting kAddedHeaderAllowance for the headers added later), so the
//   transport never has to bounce it. Per recipient: blocked /
//   not allowed domain (550 5.7.1); beyond max_recipients (452 4.5.3: the SMTP
//   client sends the rest in a later transaction); recipients_per_day would be
//   exceeded (451 4.7.1). At end of message: counted size over max_message_size
//   (552 5.3.4); with require_from_alignment, EVERY address of every From and
//   Sender header must be one the account may send as (550 5.7.1 naming the
//   first that is not; Exchange would bounce it later with 5.2.252
//   SendAsDenied); then the rate counters are checked and recorded atomically
//   (451 4.7.1 when exceeded). A null-sender message instead gets the
//   account's mailbox as envelope sender, and each From the account may not
//   send as becomes that mailbox (sender_rules.hpp null_sender_from; a missing
//   From is added).
// - Headers this relay adds (the tag header and the add_header of EVERY
//   account) are deleted from the client's message, whatever its account; the
//   tag header and the account's own add_header are then added.
// - Rules that need an account (alignment, rates, health, tag header) do not
//   apply when unknown_sender = accept let an unknown sender through; the
//   recipient and size rules apply to all mail.
// - Non-SMTP submissions (sendmail(1), qmqpd via non_smtpd_milters; see
//   ConnectionFacts::smtp): Postfix must not see a reject or tempfail at the
//   emulated RCPT stage (it would defer the message with "4.3.5 Server
//   configuration error"). So recipient verdicts are kept and returned at end of
//   message for the whole message; "too many recipients" becomes a permanent
//   550 5.5.3 there, because no SMTP client exists to send the rest later.
// - Replies carry an enhanced status code and name the rule in words; they may
//   contain '%' or bytes from the client: the glue escapes them for the MTA.
// Thread-safety: Policy is thread-safe (const; the rate limiter locks). A
// Transaction belongs to one milter session (one thread at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accounts.hpp"
#include "config.hpp"
#include "rate_limiter.hpp"

namespace o365 {

enum class Action { continue_, accept, reject, tempfail };

std::string_view to_string(Action a) noexcept;

struct HeaderEdit {
    enum class Kind { add, change, remove };
    Kind kind = Kind::add;
    std::string name;
    int index = 0;      // change/remove: 1-based among the headers of that name
    std::string value;  // add/change
    bool operator==(const HeaderEdit&) const = default;
};

struct Decision {
    Action action = Action::continue_;
    std::string smtp_code;                  // "550"; empty for continue/accept
    std::string enhanced_code;              // "5.7.1"
    std::string text;                       // human text naming the rule
    std::string rule;                       // config key of the rule that fired ("" when none)
    std::string account;                    // the account the message goes out as ("" when none)
    std::vector<HeaderEdit> edits;          // on_eom only, in the order to apply
    std::optional<std::string> new_sender;  // on_eom only: envelope sender change

    bool is_final() const { return action == Action::reject || action == Action::tempfail; }
    // "550 5.7.1 text" (empty for continue/accept)
    std::string reply() const;
};

struct ConnectionFacts {
    std::string client_addr;  // {client_addr} or the connect address
    std::string auth_authen;  // {auth_authen} (SASL login), may be empty
    bool smtp = true;         // false: non-SMTP submission (see the contract)
};

// Returns a reason when the account cannot get a token (credentials refused by
// Entra ID, as recorded by the token cache), nullopt when it is healthy or unknown.
using HealthProbe = std::function<std::optional<std::string>(const Account&)>;

class Policy {
  public:
    Policy(std::shared_ptr<const Config> config, std::shared_ptr<RateLimiter> limiter,
           HealthProbe health = {});

    const Config& config() const { return *config_; }
    std::shared_ptr<const Config> config_ptr() const { return config_; }
    const Resolver& resolver() const { return resolver_; }
    RateLimiter& limiter() const { return *limiter_; }
    const HealthProbe& health() const { return health_; }
    RateLimiter::Limits limits() const;
    // The headers this relay adds (tag header, every account's add_header):
    // client copies are deleted from every message.
    const std::vector<std::string>& managed_headers() const { return managed_headers_; }

  private:
    static std::vector<std::string> managed_header_names(const Config& c);

    std::shared_ptr<const Config> config_;
    Resolver resolver_;
    std::shared_ptr<RateLimiter> limiter_;
    HealthProbe health_;
    std::vector<std::string> managed_headers_;
};

class Transaction {
  public:
    // Bytes counted on top of the message for the headers added after the
    // milter saw it (Postfix's Received header, the tag header, add_header),
    // when comparing with a delivery method's own size limit.
    static constexpr long long kAddedHeaderAllowance = 2048;

    Transaction(std::shared_ptr<const Policy> policy, ConnectionFacts conn);

    void set_queue_id(std::string_view id) { queue_id_ = id; }

    // sender as the MTA gives it: "<a@b>", "a@b", "<>" or "" (null sender);
    // esmtp_args: "SIZE=123", "BODY=8BITMIME", "SMTPUTF8", ...
    Decision on_mail(std::string_view sender, const std::vector<std::string>& esmtp_args = {});
    Decision on_rcpt(std::string_view recipient, const std::vector<std::string>& esmtp_args = {});
    Decision on_header(std::string_view name, std::string_view value);
    Decision on_body(std::size_t bytes);
    Decision on_eom();

    // For the log line.
    const std::string& queue_id() const { return queue_id_; }
    const std::string& sender() const { return sender_; }
    const std::string& account() const { return account_; }
    const std::vector<std::string>& recipients() const { return recipients_; }
    std::uint64_t size() const { return size_; }
    bool done() const { return done_; }

    // One line for the log: "QUEUEID: from=<..>, account=.., nrcpt=N (to=<..>,..),
    // size=N, verdict=.., rule=.., reply=..".
    std::string log_line(const Decision& d) const;
    // The line for a refused recipient.
    std::string log_rcpt_refused(std::string_view recipient, const Decision& d) const;

    const Policy& policy() const { return *policy_; }

  private:
    Decision make(Action a, std::string smtp, std::string enh, std::string text,
                  std::string rule) const;
    Decision finish(Decision d);  // marks done, remembers the verdict
    // The 451 4.7.1 tempfail for an account over messages_per_minute or recipients_per_day.
    Decision rate_limited(RateLimiter::Verdict v) const;
    // 552 5.3.4 when `size` is over the account's method limit (graph_size_limit)
    // or over max_message_size; `declared`: the SIZE= value (named in the text).
    std::optional<Decision> size_verdict(long long size, bool declared) const;
    std::optional<Decision> domain_verdict(const std::string& rcpt) const;
    std::optional<Decision> alignment_verdict(const Account& acc) const;
    void add_tag_edits(const Account* acc, Decision& d) const;
    void add_null_sender_edits(const Account& acc, Decision& d) const;

    std::shared_ptr<const Policy> policy_;
    ConnectionFacts conn_;
    std::string queue_id_;
    std::string sender_;  // without <>
    bool null_sender_ = false;
    const Account* acc_ = nullptr;
    std::string account_;
    std::vector<std::string> recipients_;  // accepted
    std::uint64_t size_ = 0;               // headers + body bytes counted so far
    long long declared_size_ = -1;
    std::vector<std::string> from_values_;
    std::vector<std::string> sender_values_;
    std::map<std::string, int> header_counts_;  // lower-case name -> occurrences
    std::optional<Decision> pending_;           // non-SMTP: a recipient verdict for EOM
    bool too_many_ = false;                     // non-SMTP: beyond max_recipients
    bool mail_seen_ = false;
    bool done_ = false;
    Decision final_;
};

}  // namespace o365
