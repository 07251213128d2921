// glue: the thin libmilter layer of o365relay-milter. It translates libmilter
// callbacks into Policy/Transaction calls and Decisions into milter replies and
// end-of-message edits; it holds no rule of its own.
//
// Contract:
// - Runtime holds the current Policy (a shared_ptr swapped atomically on reload);
//   each message takes a snapshot at MAIL FROM and finishes under it.
// - Per connection a ConnCtx (smfi_setpriv), per message a Transaction.
// - Every callback catches every exception, logs it and answers per [milter]
//   on_error (tempfail: 451 4.3.0, reject: 550 5.3.0, accept: SMFIS_ACCEPT).
// - Registered callbacks: negotiate, connect, envfrom, envrcpt, header, body,
//   eom, abort, close. HELO, DATA, EOH and unknown commands are skipped
//   (SMFIP_NO*); connect, headers and body chunks need no reply
//   (SMFIP_NR_CONN, SMFIP_NR_HDR, SMFIP_NR_BODY when the MTA offers them):
//   fewer round trips per message. The size counted from the body is then
//   judged at end of message; an error at a no-reply stage is answered at the
//   next stage that replies (connect: MAIL; header/body: end of message).
//   Macros requested (smfi_setsymlist): connect {client_addr} {daemon_addr}
//   {daemon_port}; MAIL i {auth_authen}; EOM i; RCPT none (a name no MTA
//   defines, so that Postfix sends no macro packet per recipient).
// - Non-SMTP submissions (Postfix non_smtpd_milters: sendmail(1)) are
//   recognised by cleanup(8)'s emulated connect: client port 0 and
//   {daemon_port} "0" (Postfix 3.7, verified with a private instance; before
//   Postfix 3.2 no {daemon_addr} at all, also taken as non-SMTP). smtpd(8)
//   clients always have a real port. Known gap: qmqpd(8) submissions carry the
//   QMQP client's real address and port and are judged like SMTP. See
//   policy.hpp for what changes for non-SMTP submissions.
// - Replies: smfi_setreply with code, enhanced code and text; the text is made
//   safe for libmilter (CR/LF and other controls become spaces, '%' doubled,
//   at most 400 bytes). Edits only at end of message: smfi_chgheader to delete
//   (value NULL) or change, smfi_addheader, smfi_chgfrom.
// - One log line per message at its verdict (Transaction::log_line), one per
//   refused recipient.
// Thread-safety: libmilter runs one thread per session; Runtime is thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "policy.hpp"
#include "reply_text.hpp"

struct smfiDesc;

namespace o365 {

class Runtime {
  public:
    std::shared_ptr<const Policy> policy() const {
        std::lock_guard lock(mu_);
        return policy_;
    }
    void set_policy(std::shared_ptr<const Policy> p) {
        std::lock_guard lock(mu_);
        policy_ = std::move(p);
    }

  private:
    mutable std::mutex mu_;
    std::shared_ptr<const Policy> policy_;
};

// Registers the filter with libmilter (smfi_register) using `runtime` (which
// must outlive smfi_main). Returns false (and logs) when libmilter refuses.
bool register_filter(Runtime& runtime, const char* name);

}  // namespace o365
