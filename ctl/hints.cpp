#include "hints.hpp"

#include <utility>

namespace o365::ctl {

namespace {

std::string replace_all(std::string text, std::string_view key, std::string_view value) {
    if (value.empty()) return text;
    for (std::size_t pos = 0; (pos = text.find(key, pos)) != std::string::npos;) {
        text.replace(pos, key.size(), value);
        pos += value.size();
    }
    return text;
}

std::string with_mailbox(std::string text, std::string_view mailbox) {
    return replace_all(std::move(text), "MAILBOX", mailbox);
}

struct ReplyHint {
    const char* needle;
    const char* fix;
};

// Microsoft Graph's error codes (accounts with method = graph), as the
// transport's status line quotes them ("HTTP 403 ErrorAccessDenied: ...").
// Checked before the SMTP table: a Graph code is unambiguous.
const ReplyHint kGraphHints[] = {
    {"ErrorAccessDenied",
     "the app may not send as MAILBOX through Graph: grant the Microsoft Graph application "
     "permission Mail.Send with admin consent (delegated: Mail.Send, signed in as MAILBOX), "
     "and check that the Exchange scope includes MAILBOX: RBAC for Applications "
     "(New-ManagementRoleAssignment -App CLIENT_ID -Role \"Application Mail.Send\" "
     "-CustomResourceScope SCOPE; Test-ServicePrincipalAuthorization) or the application "
     "access policy (New-ApplicationAccessPolicy -AccessRight RestrictAccess; "
     "Test-ApplicationAccessPolicy -Identity MAILBOX -AppId CLIENT_ID); changes take up to "
     "an hour"},
    {"ErrorInvalidUser",
     "Graph knows no mailbox MAILBOX in this tenant: check the account's mailbox (user "
     "principal name or primary address), [entra] tenant, and that the user has an Exchange "
     "Online license"},
    {"MailboxNotEnabledForRESTAPI",
     "MAILBOX is not an Exchange Online mailbox Graph can use (on-premises in a hybrid "
     "set-up, inactive, or unlicensed): use a cloud mailbox, or method = smtp for this "
     "account"},
    {"ErrorSendAsDenied",
     "Exchange refused Send As: grant MAILBOX Send As on the sender (Add-RecipientPermission "
     "-Identity SENDER -Trustee MAILBOX -AccessRights SendAs) or remove the sender from the "
     "account's senders"},
    {"ErrorQuotaExceeded",
     "MAILBOX is over its storage quota (Graph keeps a copy in Sent Items): empty or archive "
     "Sent Items, or raise the quota"},
    {"InvalidAuthenticationToken",
     "Graph refused the token: `o365relayctl token refresh ACCOUNT`; [graph] scope must be "
     "empty or https://graph.microsoft.com/.default (app-only); [graph] endpoint and [entra] "
     "authority must be of the same cloud; delegated accounts: o365relayctl login ACCOUNT"},
    {"MailboxConcurrency",
     "more than 4 concurrent Graph requests for MAILBOX: maxproc of the o365graph entry in "
     "master.cf must be at most 4; look for other clients of the same app and mailbox"},
    {"ApplicationThrottled",
     "Graph throttles the app for MAILBOX (429): deliveries wait for its Retry-After; if it "
     "persists, look for other clients of the same app and mailbox"},
    {"larger than the 3 MB",
     "Graph takes at most 3 MB per message: use method = smtp for this account, or lower "
     "[policy] max_message_size to 3145728 so clients learn the limit"},
};

// First match wins: specific codes before the generic 535.
const ReplyHint kReplyHints[] = {
    {"5.7.139",
     "SMTP AUTH is disabled for the tenant or mailbox: Set-CASMailbox -Identity MAILBOX "
     "-SmtpClientAuthenticationDisabled $false (and check Set-TransportConfig "
     "-SmtpClientAuthenticationDisabled)"},
    {"5.2.252",
     "Exchange refused Send As: grant MAILBOX Send As on the sender (Add-RecipientPermission "
     "-Identity SENDER -Trustee MAILBOX -AccessRights SendAs) or remove the sender from the "
     "account's senders"},
    {"5.7.60",
     "Exchange refused Send As: grant MAILBOX Send As on the sender (Add-RecipientPermission "
     "-Identity SENDER -Trustee MAILBOX -AccessRights SendAs) or remove the sender from the "
     "account's senders"},
    {"5.1.8",
     "MAILBOX is blocked for outbound spam: remove it from Restricted entities in the "
     "Microsoft Defender portal"},
    {"SubmissionQuotaExceeded",
     "MAILBOX reached its daily recipient limit (10,000 per 24 h): wait, or spread the mail "
     "over more accounts; lower [policy] recipients_per_day to defer earlier"},
    {"4.3.2",
     "more than 3 concurrent connections for MAILBOX (Exchange's limit per mailbox): with "
     "o365_destination_recipient_limit = 1 Postfix's destination concurrency limit counts "
     "per recipient, so the cap per account is the maxproc column of its master.cf entry; "
     "keep it at 3 or less per account (one entry per busy account), then postfix reload"},
    {"5.7.57", "Office 365 did not accept the authentication: run `o365relayctl check`"},
    {"5.1.1", "the recipient does not exist: check the address"},
    {"5.1.10", "the recipient does not exist: check the address"},
    {"5.7.3",
     "Exchange refused the token: for app-only, register the app's service principal in "
     "Exchange Online (New-ServicePrincipal) and grant it MAILBOX (Add-MailboxPermission "
     "-AccessRights FullAccess); for delegated, the signed-in user must own MAILBOX; the API "
     "permission must be SMTP.SendAsApp / SMTP.Send"},
    {"535 ",
     "Exchange refused the token: for app-only, register the app's service principal in "
     "Exchange Online (New-ServicePrincipal) and grant it MAILBOX (Add-MailboxPermission "
     "-AccessRights FullAccess); for delegated, the signed-in user must own MAILBOX; the API "
     "permission must be SMTP.SendAsApp / SMTP.Send"},
};

}  // namespace

std::string for_account(std::string fix, const Account& account) {
    fix = replace_all(std::move(fix), "CLIENT_ID", account.entra.client_id);
    return replace_all(std::move(fix), "ACCOUNT", account.name);
}

std::string graph_fix(std::string_view text, std::string_view mailbox) {
    for (const auto& h : kGraphHints)
        if (text.find(h.needle) != std::string_view::npos) return with_mailbox(h.fix, mailbox);
    return "";
}

std::string reply_fix(std::string_view text, std::string_view mailbox) {
    if (std::string fix = graph_fix(text, mailbox); !fix.empty()) return fix;
    for (const auto& h : kReplyHints)
        if (text.find(h.needle) != std::string_view::npos) return with_mailbox(h.fix, mailbox);
    return "";
}

std::string smtp_fix(const Failure& f, int port, std::string_view mailbox) {
    switch (f.cause) {
        case Cause::tls:
            return "the server's certificate was not trusted: check [smtp] host (use the DNS "
                   "name, smtp.office365.com) and [smtp] ca_file / the system trust store; a "
                   "TLS-inspecting firewall must not intercept port " +
                   std::to_string(port);
        case Cause::starttls_unavailable:
            return "the server does not offer STARTTLS: something between this host and "
                   "Office 365 strips it (a proxy or firewall inspecting SMTP); nothing was "
                   "sent in clear";
        case Cause::resolve:
        case Cause::connect:
        case Cause::timeout:
        case Cause::lost_connection:
            return "check DNS and that outbound TCP port " + std::to_string(port) +
                   " to [smtp] host is allowed";
        default:
            break;
    }
    std::string fix = reply_fix(f.reply ? f.reply->text() : f.detail, mailbox);
    return fix.empty() ? "see troubleshooting.md for this reply" : fix;
}

std::string token_fix(const Error& e) {
    std::string_view msg = e.what();
    if (msg.find("(hint:") != std::string_view::npos) return "";  // AADSTS hint already there
    if (msg.find("certificate") != std::string_view::npos ||
        msg.find("SSL") != std::string_view::npos)
        return "Entra ID's TLS certificate was not trusted: check [entra] ca_file (default: "
               "the system trust store) and [entra] authority, and that no TLS-inspecting "
               "proxy intercepts HTTPS to it";
    // http.hpp's network errors: "token request to HOST: <curl's reason>".
    if (msg.find("token request to ") != std::string_view::npos &&
        msg.find("[HTTP ") == std::string_view::npos)
        return "check DNS and that outbound HTTPS (port 443) to [entra] authority is allowed";
    return "";
}

}  // namespace o365::ctl
