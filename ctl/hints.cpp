#include "hints.hpp"

namespace o365::ctl {

namespace {

std::string with_mailbox(std::string text, std::string_view mailbox) {
    const std::string key = "MAILBOX";
    if (mailbox.empty()) return text;
    for (std::size_t pos; (pos = text.find(key)) != std::string::npos;)
        text.replace(pos, key.size(), mailbox);
    return text;
}

struct ReplyHint {
    const char* needle;
    const char* fix;
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

std::string reply_fix(std::string_view text, std::string_view mailbox) {
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
