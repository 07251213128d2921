// hints: what an administrator must do about a failure o365relayctl reports
// (check, send-test). Entra's AADSTS codes carry their hint already (the token
// client appends aadsts.hpp's hint to the error); these cover the rest: SMTP
// replies of Office 365, Microsoft Graph's error codes, certificate and
// network problems.
//
// Contract: each function returns one line of advice, or "" when it knows
// none. MAILBOX in the advice is replaced by the mailbox given. Pure functions
// of their arguments; thread-safe; never throw (beyond bad_alloc).
#pragma once

#include <string>
#include <string_view>

#include "config.hpp"
#include "error.hpp"
#include "failure.hpp"

namespace o365::ctl {

// Advice for a Microsoft Graph error (its code, e.g. ErrorAccessDenied, or a
// transport status line quoting "HTTP 403 ErrorAccessDenied: ..."); "" when
// the text names no Graph code known here. CLIENT_ID and ACCOUNT stay for
// for_account() to replace.
std::string graph_fix(std::string_view text, std::string_view mailbox);

// `fix` with the placeholders ACCOUNT (the account's name) and CLIENT_ID (its
// [entra] client_id) replaced.
std::string for_account(std::string fix, const Account& account);

// Advice for a reply of Office 365, or for a transport status line that
// quotes one (looks for the enhanced codes Microsoft sends, and Graph's codes
// through graph_fix()).
std::string reply_fix(std::string_view text, std::string_view mailbox);

// Advice for a failed SMTP session: local causes (TLS, connect, STARTTLS)
// first, then reply_fix() of the server's reply. `port` is [smtp] port.
std::string smtp_fix(const Failure& f, int port, std::string_view mailbox);

// Advice for a failed token request whose message has no AADSTS hint:
// certificate and network problems on the way to Entra ID.
std::string token_fix(const Error& e);

}  // namespace o365::ctl
