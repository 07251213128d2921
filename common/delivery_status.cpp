#include "delivery_status.hpp"

#include <string_view>

namespace o365 {

namespace {

// A recipient refused (or invalid) while the others of the same delivery could
// succeed: one exit status covers them all, so the delivery defers.
constexpr const char* kAllOrNothingHint =
    " [o365relay: other recipients could be delivered; nothing sent; "
    "set o365_destination_recipient_limit = 1]";

bool contains(const SmtpReply& r, std::string_view needle) {
    for (const auto& l : r.lines)
        if (l.find(needle) != std::string::npos) return true;
    return false;
}

// The enhanced code of a reply, or "X.0.0" from the reply's class.
std::string reply_dsn(const SmtpReply& r) {
    if (!r.enhanced.empty()) return r.enhanced;
    int c = r.code / 100;
    if (c == 2 || c == 4 || c == 5) return std::to_string(c) + ".0.0";
    return "4.0.0";
}

// "5.7.139" -> "4.7.139"
std::string as_temporary(std::string dsn) {
    if (!dsn.empty()) dsn[0] = '4';
    return dsn;
}

// One printable line, at most 1000 bytes (pipe(8) keeps up to 4096).
std::string one_line(std::string s) {
    for (char& c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) c = ' ';
    }
    if (s.size() > 1000) s = s.substr(0, 997) + "...";
    return s;
}

std::string reply_reason(const Failure& f) {
    const SmtpReply& r = *f.reply;
    std::string host = f.peer.empty() ? std::string("the server") : "host " + f.peer;
    std::string s;
    if (f.stage == Stage::greeting) {
        s = host + " refused to talk to me: " + r.text();
    } else {
        s = host + " said: " + r.text();
        std::string_view cmd = stage_command(f.stage);
        if (!cmd.empty()) s += " (in reply to " + std::string(cmd) + " command";
        if (f.stage == Stage::rcpt_to && !f.recipient.empty()) s += " for <" + f.recipient + ">";
        if (!cmd.empty()) s += ")";
    }
    if (f.after_refresh) s += "; again after a forced token refresh";
    return s;
}

// Account- or tenant-level refusals that Exchange sends as 5xx although the
// account (not this message) is the problem: retrying later can succeed.
// Returns a short explanation, or nullptr when the reply is not one of them.
const char* account_level(const SmtpReply& r) {
    const std::string& e = r.enhanced;
    if (e == "5.7.139") return "SMTP AUTH is disabled for the tenant or mailbox";
    if (e == "5.1.8") return "the mailbox is blocked for sending (bad outbound sender)";
    if (e == "5.2.0" && contains(r, "SubmissionQuotaExceeded"))
        return "the mailbox reached its recipient quota";
    if (e == "5.2.2" && contains(r, "STOREDRV.Submission.Exception:QuotaExceededException"))
        return "the sending mailbox is over its storage quota (Sent Items full)";
    if (e == "5.2.251" || e == "5.2.253" || e == "5.2.254" || e == "5.2.255")
        return "Microsoft blocks the mailbox for a while after repeated errors";
    if (e == "5.2.252" && !contains(r, "SendAsDenied"))
        return "Microsoft blocks the mailbox for a while after repeated errors";
    if (e == "5.7.57") return "the client is not authenticated to send mail";
    if (e == "5.7.705" || e == "5.7.708") return "the tenant is blocked by Microsoft";
    return nullptr;
}

// Refusals of THIS sender (no Send As right), at whatever stage Exchange sends them.
bool sender_refused(const SmtpReply& r) {
    return (r.enhanced == "5.2.252" && contains(r, "SendAsDenied")) || r.enhanced == "5.7.60";
}

bool too_big(const SmtpReply& r) {
    return r.code == 552 || r.enhanced == "5.3.4" || r.enhanced == "5.2.3";
}

Outcome temp(std::string dsn, const std::string& reason) {
    return Outcome{kExTempFail, one_line(as_temporary(std::move(dsn)) + " " + reason)};
}

Outcome perm(int status, const std::string& dsn, const std::string& reason) {
    return Outcome{status, one_line(dsn + " " + reason)};
}

// ---- Microsoft Graph answers (Cause::graph_reply) ------------------------------

// One row of the Graph table: the first row whose status and code match decides.
struct GraphRow {
    long status;            // 0: any status
    std::string_view code;  // "": any code; "Prefix*": codes starting with Prefix
    int exit_status;        // kExTempFail or a permanent status
    const char* dsn;
    const char* note;        // account-level explanation, nullptr for none
    bool recipient = false;  // about a recipient: all-or-nothing with several recipients
};

// clang-format off
constexpr GraphRow kGraphRows[] = {
    {0, "ErrorQuotaExceeded", kExTempFail, "4.2.2",
     "the sending mailbox is over its storage quota (Sent Items full)"},
    {401, "", kExTempFail, "4.7.0",
     "Microsoft Graph refused the token; run o365relayctl check"},
    {403, "ErrorSendAsDenied", kExUnavailable, "5.7.60", nullptr},
    {403, "ErrorAccessDenied", kExTempFail, "4.7.0",
     "the app may not send as this mailbox (Graph permission Mail.Send, RBAC for Applications "
     "scope or application access policy); run o365relayctl check"},
    {404, "ErrorInvalidUser", kExTempFail, "4.7.0",
     "Microsoft Graph does not know the account's mailbox; run o365relayctl check"},
    {404, "MailboxNotEnabledForRESTAPI", kExTempFail, "4.7.0",
     "the mailbox is not enabled for Microsoft Graph (on-premises mailbox?); use method = smtp "
     "or move the mailbox; run o365relayctl check"},
    {400, "ErrorInvalidRecipients", kExNoUser, "5.1.3", nullptr, true},
    {400, "ErrorRecipient*", kExNoUser, "5.1.1", nullptr, true},
    {400, "ErrorMimeContent*", kExDataErr, "5.6.0", nullptr},
    {400, "ErrorMessageSizeExceeded", kExDataErr, "5.3.4", nullptr},
    {413, "", kExDataErr, "5.3.4", nullptr},
    {429, "", kExTempFail, "4.7.0",
     "Microsoft Graph throttles the mailbox; every delivery of the account waits for Retry-After"},
    {403, "", kExTempFail, "4.7.0", "access denied; run o365relayctl check"},
};
// clang-format on

bool code_matches(std::string_view pattern, const std::string& code) {
    if (pattern.empty()) return true;
    if (pattern.back() == '*') return code.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
    return code == pattern;
}

const GraphRow* graph_row(const Failure& f) {
    for (const auto& row : kGraphRows)
        if ((row.status == 0 || row.status == f.http_status) &&
            code_matches(row.code, f.graph_code))
            return &row;
    return nullptr;
}

// "host graph.microsoft.com[A]:443 said: HTTP 403 ErrorAccessDenied: Access is
// denied. (in reply to sendMail)"
std::string graph_reason(const Failure& f) {
    std::string host = f.peer.empty() ? std::string("Microsoft Graph") : "host " + f.peer;
    std::string s = host + " said: HTTP " + std::to_string(f.http_status);
    if (!f.graph_code.empty()) s += " " + f.graph_code;
    if (!f.graph_message.empty()) s += (f.graph_code.empty() ? " " : ": ") + f.graph_message;
    std::string_view what = stage_command(f.stage);
    if (!what.empty()) s += " (in reply to " + std::string(what) + ")";
    if (f.after_refresh) s += "; again after a forced token refresh";
    return s;
}

Outcome decide_graph(const Failure& f) {
    std::string reason = graph_reason(f);
    if (const GraphRow* row = graph_row(f)) {
        if (row->exit_status == kExTempFail) {
            if (row->note)
                return Outcome{kExTempFail, one_line(std::string(row->dsn) + " " + reason +
                                                     " [o365relay: " + row->note + "; deferred]")};
            return Outcome{kExTempFail, one_line(std::string(row->dsn) + " " + reason)};
        }
        if (row->recipient && f.others_accepted)
            return Outcome{kExTempFail,
                           one_line(as_temporary(row->dsn) + " " + reason + kAllOrNothingHint)};
        return Outcome{row->exit_status, one_line(std::string(row->dsn) + " " + reason)};
    }
    if (f.http_status >= 500) return Outcome{kExTempFail, one_line("4.4.0 " + reason)};
    return Outcome{kExTempFail, one_line("4.5.0 unexpected answer: " + reason)};
}

}  // namespace

Outcome decide(const Failure& f) {
    const std::string& d = f.detail;
    switch (f.cause) {
        case Cause::server_reply:
            break;
        case Cause::graph_reply:
            return decide_graph(f);
        case Cause::throttled:
            return temp("4.7.0", d);
        case Cause::message_too_big:
            return perm(kExDataErr, "5.3.4", d);
        case Cause::resolve:
            return temp("4.4.3", d);
        case Cause::connect:
            return temp("4.4.1", d);
        case Cause::lost_connection:
        case Cause::timeout:
            return temp("4.4.2", d);
        case Cause::deadline:
            return temp("4.4.7", d);
        case Cause::tls:
            return temp("4.7.5", d);
        case Cause::protocol:
            return temp("4.5.0", d);
        case Cause::starttls_unavailable:
        case Cause::auth_unavailable:
            return temp("4.7.4", d);
        case Cause::smtputf8_unsupported:
            return perm(kExUnavailable, "5.6.7", d);
        case Cause::message_input:
        case Cause::internal:
            return temp("4.3.0", d);
        case Cause::token:
            // Entra unreachable, throttled, or the credentials refused: the
            // account's problem, which an administrator can fix.
            return temp("4.7.0", d);
        case Cause::usage:
        case Cause::config:
        case Cause::account_mismatch:
            return temp("4.3.5", d);
        case Cause::no_account:
        case Cause::null_sender_refused:
            return perm(kExUnavailable, "5.7.1", d);
        case Cause::invalid_sender:
            return perm(kExUnavailable, "5.1.7", d);
        case Cause::invalid_recipient:
            if (f.others_accepted) return temp("4.1.3", d + kAllOrNothingHint);
            return perm(kExNoUser, "5.1.3", d);
    }

    if (!f.reply) return temp("4.3.0", "no reply recorded for a server refusal: " + d);
    const SmtpReply& r = *f.reply;
    std::string dsn = reply_dsn(r);
    std::string reason = reply_reason(f);

    if (!r.permanent()) {
        // 4xx (incl. 432 4.3.2 concurrent connections, 421 service closing),
        // or a positive reply where another was expected.
        if (r.transient()) return temp(dsn, reason);
        return temp("4.5.0", "unexpected reply: " + reason);
    }
    if (const char* why = account_level(r))
        return temp(dsn, reason + " [o365relay: " + why + "; deferred]");
    if (f.stage >= Stage::mail_from && f.stage <= Stage::end_of_data && sender_refused(r))
        return perm(kExUnavailable, dsn, reason);
    switch (f.stage) {
        case Stage::mail_from:
            if (too_big(r)) return perm(kExDataErr, dsn, reason);
            return perm(kExUnavailable, dsn, reason);
        case Stage::rcpt_to:
            if (f.others_accepted) return temp(dsn, reason + kAllOrNothingHint);
            if (r.enhanced.rfind("5.1.", 0) == 0 || r.enhanced.rfind("5.4.", 0) == 0)
                return perm(kExNoUser, dsn, reason);
            if (too_big(r)) return perm(kExDataErr, dsn, reason);
            return perm(kExUnavailable, dsn, reason);
        case Stage::data:
            return perm(kExUnavailable, dsn, reason);
        case Stage::sending_message:
        case Stage::end_of_data:
            return perm(kExDataErr, dsn, reason);
        default:
            // Greeting, EHLO, STARTTLS, AUTH (535 after the forced refresh,
            // 5.7.139, ...), QUIT: about the connection or the account,
            // never about this message.
            return temp(dsn, reason);
    }
}

Outcome delivered(const SmtpReply& final_reply, const std::string& peer) {
    std::string dsn = final_reply.enhanced.empty() ? "2.0.0" : final_reply.enhanced;
    std::string host = peer.empty() ? std::string("the server") : "host " + peer;
    return Outcome{kExOk, one_line(dsn + " " + host + " said: " + final_reply.text())};
}

Outcome delivered_by_graph(long http_status, Stage stage, const std::string& peer) {
    std::string host = peer.empty() ? std::string("Microsoft Graph") : "host " + peer;
    return Outcome{kExOk,
                   one_line("2.0.0 " + host + " said: HTTP " + std::to_string(http_status) +
                            " Accepted (in reply to " + std::string(stage_command(stage)) + ")")};
}

bool token_refresh_may_help(const Failure& f) {
    return f.cause == Cause::server_reply && f.stage == Stage::auth && f.reply &&
           f.reply->code == 535 && f.reply->enhanced != "5.7.139";
}

}  // namespace o365
