// Table tests of common/delivery_status: every reply of O365-FACTS.md and
// every local failure, at the stage where it happens -> exit status and the
// enhanced code printed first.
#include <boost/test/unit_test.hpp>

#include "delivery_status.hpp"
#include "smtp_reply.hpp"

using namespace o365;

namespace {

SmtpReply reply(std::string_view wire) {
    ReplyParser p;
    p.feed(wire);
    p.feed("\r\n");
    auto r = p.next();
    BOOST_REQUIRE(r);
    return *r;
}

const char* kPeer = "smtp.office365.com[52.96.0.1]:587";

struct ReplyRow {
    Stage stage;
    const char* wire;
    int exit_status;
    const char* dsn;
    bool others_accepted = false;
};

// clang-format off
const ReplyRow kReplyRows[] = {
    // --- O365-FACTS.md replies ---
    {Stage::auth, "535 5.7.3 Authentication unsuccessful [SN4PR0501CA0049.namprd05.prod.outlook.com]", 75, "4.7.3"},
    {Stage::auth, "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.", 75, "4.7.139"},
    {Stage::end_of_data, "554 5.2.252 SendAsDenied; noreply@contoso.com not allowed to send as ceo@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied", 69, "5.2.252"},
    {Stage::mail_from, "554 5.2.252 SendAsDenied; noreply@contoso.com not allowed to send as ceo@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException", 69, "5.2.252"},
    {Stage::mail_from, "550 5.1.8 Access denied, bad outbound sender", 75, "4.1.8"},
    {Stage::rcpt_to, "550 5.1.8 Access denied, bad outbound sender", 75, "4.1.8"},
    {Stage::end_of_data, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception", 75, "4.2.0"},
    {Stage::rcpt_to, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", 75, "4.2.0"},
    // the SENDING mailbox (its Sent Items) is over its storage quota: the account's problem
    {Stage::end_of_data, "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionQuotaExceeded; Failed to process message due to a permanent exception", 75, "4.2.2"},
    {Stage::mail_from, "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException", 75, "4.2.2"},
    {Stage::data, "554 5.2.2 STOREDRV.Submission.Exception:QuotaExceededException", 75, "4.2.2"},
    // a RECIPIENT's mailbox full is that recipient's problem: still permanent
    {Stage::rcpt_to, "550 5.2.2 mailbox full", 69, "5.2.2"},
    {Stage::greeting, "432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.", 75, "4.3.2"},
    {Stage::auth, "432 4.3.2 Concurrent connections limit exceeded", 75, "4.3.2"},
    {Stage::mail_from, "530 5.7.57 Client not authenticated to send mail. Error: 535 5.7.3 Authentication unsuccessful", 75, "4.7.57"},
    {Stage::mail_from, "550 5.7.60 SMTP; Client does not have permissions to send as this sender", 69, "5.7.60"},
    {Stage::end_of_data, "550 5.7.60 SMTP; Client does not have permissions to send as this sender", 69, "5.7.60"},
    {Stage::mail_from, "550 5.2.251 temporarily blocked: mailbox full errors", 75, "4.2.251"},
    {Stage::end_of_data, "550 5.2.252 temporarily blocked after repeated send-as errors", 75, "4.2.252"},
    {Stage::mail_from, "550 5.2.253 temporarily blocked: invalid licence", 75, "4.2.253"},
    {Stage::rcpt_to, "550 5.2.254 temporarily blocked: too many recipients", 75, "4.2.254"},
    {Stage::rcpt_to, "550 5.2.255 temporarily blocked: invalid recipients", 75, "4.2.255"},
    {Stage::end_of_data, "250 2.0.0 OK <a@b> [Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com]", 75, "4.5.0"},  // success is not a failure
    // --- tenant blocks (Microsoft NDR reference) ---
    {Stage::mail_from, "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.", 75, "4.7.708"},
    {Stage::mail_from, "550 5.7.705 Access denied, tenant has exceeded threshold", 75, "4.7.705"},
    // --- recipients ---
    {Stage::rcpt_to, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", 67, "5.1.10"},
    {Stage::rcpt_to, "550 5.1.1 User unknown", 67, "5.1.1"},
    {Stage::rcpt_to, "550 5.4.1 Recipient address rejected: Access denied", 67, "5.4.1"},
    {Stage::rcpt_to, "550 5.7.1 Recipient not authorized", 69, "5.7.1"},
    {Stage::rcpt_to, "550 No such user", 69, "5.0.0"},
    {Stage::rcpt_to, "452 4.5.3 Too many recipients", 75, "4.5.3"},
    {Stage::rcpt_to, "450 4.2.1 Mailbox temporarily unavailable", 75, "4.2.1"},
    {Stage::rcpt_to, "451 Try again", 75, "4.0.0"},
    // one recipient refused while others were accepted: all-or-nothing -> defer
    {Stage::rcpt_to, "550 5.1.1 User unknown", 75, "4.1.1", true},
    {Stage::rcpt_to, "450 4.2.1 busy", 75, "4.2.1", true},
    // --- size and content ---
    {Stage::mail_from, "552 5.3.4 Message size exceeds fixed maximum message size", 65, "5.3.4"},
    {Stage::end_of_data, "552 5.3.4 Message size exceeds fixed maximum message size", 65, "5.3.4"},
    {Stage::end_of_data, "550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient", 65, "5.2.3"},
    {Stage::end_of_data, "550 5.7.1 Message rejected as spam by Content Filtering", 65, "5.7.1"},
    {Stage::end_of_data, "554 5.6.0 Corrupt message content", 65, "5.6.0"},
    {Stage::end_of_data, "451 4.4.0 Message failed to be made persistent", 75, "4.4.0"},
    {Stage::end_of_data, "421 4.3.2 Service not available, closing transmission channel", 75, "4.3.2"},
    // --- sender and DATA ---
    {Stage::mail_from, "550 5.7.1 Sender refused", 69, "5.7.1"},
    {Stage::mail_from, "501 5.1.7 Invalid address", 69, "5.1.7"},
    {Stage::data, "554 5.5.1 No valid recipients", 69, "5.5.1"},
    {Stage::data, "503 5.5.1 Bad sequence of commands", 69, "5.5.1"},
    // --- before MAIL FROM: never about this message ---
    {Stage::greeting, "554 5.7.1 Service unavailable; Client host blocked", 75, "4.7.1"},
    {Stage::greeting, "421 4.3.2 Service not available", 75, "4.3.2"},
    {Stage::ehlo, "501 5.5.4 Invalid domain name", 75, "4.5.4"},
    {Stage::starttls, "454 4.7.0 TLS not available due to temporary reason", 75, "4.7.0"},
    {Stage::starttls, "554 5.7.3 Unable to initialize security subsystem", 75, "4.7.3"},
    {Stage::ehlo_after_tls, "550 5.0.0 nope", 75, "4.0.0"},
    {Stage::auth, "535 Authentication failed", 75, "4.0.0"},
    {Stage::auth, "504 5.7.4 Unrecognized authentication type", 75, "4.7.4"},
    {Stage::auth, "421 4.7.66 TLS 1.0 and 1.1 are not supported", 75, "4.7.66"},
};
// clang-format on

}  // namespace

BOOST_AUTO_TEST_SUITE(delivery_status)

BOOST_AUTO_TEST_CASE(server_replies) {
    for (const ReplyRow& row : kReplyRows) {
        BOOST_TEST_CONTEXT(stage_name(row.stage) << ": " << row.wire) {
            Failure f;
            f.cause = Cause::server_reply;
            f.stage = row.stage;
            f.reply = reply(row.wire);
            f.peer = kPeer;
            f.others_accepted = row.others_accepted;
            Outcome o = decide(f);
            BOOST_TEST(o.exit_status == row.exit_status);
            BOOST_TEST(o.dsn() == row.dsn);
            // The code printed first agrees with the exit status.
            BOOST_TEST((o.status_line[0] == '4') == (o.exit_status == kExTempFail));
            // The server's reply is carried whole (code and text).
            BOOST_TEST(o.status_line.find(f.reply->text().substr(0, 60)) != std::string::npos);
            BOOST_TEST(o.status_line.find(kPeer) != std::string::npos);
            BOOST_TEST(o.status_line.find('\n') == std::string::npos);
        }
    }
}

BOOST_AUTO_TEST_CASE(local_failures) {
    struct Row {
        Cause cause;
        Stage stage;
        ErrorClass cls;
        int exit_status;
        const char* dsn;
    };
    const Row rows[] = {
        {Cause::resolve, Stage::connect, ErrorClass::temporary, 75, "4.4.3"},
        {Cause::connect, Stage::connect, ErrorClass::temporary, 75, "4.4.1"},
        {Cause::lost_connection, Stage::end_of_data, ErrorClass::temporary, 75, "4.4.2"},
        {Cause::timeout, Stage::rcpt_to, ErrorClass::temporary, 75, "4.4.2"},
        {Cause::deadline, Stage::sending_message, ErrorClass::temporary, 75, "4.4.7"},
        {Cause::tls, Stage::tls_handshake, ErrorClass::temporary, 75, "4.7.5"},
        {Cause::protocol, Stage::ehlo, ErrorClass::temporary, 75, "4.5.0"},
        {Cause::starttls_unavailable, Stage::ehlo, ErrorClass::temporary, 75, "4.7.4"},
        {Cause::auth_unavailable, Stage::ehlo_after_tls, ErrorClass::temporary, 75, "4.7.4"},
        {Cause::smtputf8_unsupported, Stage::mail_from, ErrorClass::permanent, 69, "5.6.7"},
        {Cause::message_input, Stage::none, ErrorClass::temporary, 75, "4.3.0"},
        {Cause::internal, Stage::none, ErrorClass::temporary, 75, "4.3.0"},
        // token endpoint unreachable / 5xx / 429, and credentials refused by Entra
        {Cause::token, Stage::none, ErrorClass::temporary, 75, "4.7.0"},
        {Cause::token, Stage::none, ErrorClass::configuration, 75, "4.7.0"},
        {Cause::token, Stage::auth, ErrorClass::configuration, 75, "4.7.0"},
        {Cause::usage, Stage::none, ErrorClass::configuration, 75, "4.3.5"},
        {Cause::config, Stage::none, ErrorClass::configuration, 75, "4.3.5"},
        {Cause::account_mismatch, Stage::none, ErrorClass::configuration, 75, "4.3.5"},
        {Cause::no_account, Stage::none, ErrorClass::permanent, 69, "5.7.1"},
        {Cause::null_sender_refused, Stage::none, ErrorClass::permanent, 69, "5.7.1"},
        // an envelope address no server accepts: retrying cannot help
        {Cause::invalid_sender, Stage::none, ErrorClass::permanent, 69, "5.1.7"},
        {Cause::invalid_recipient, Stage::none, ErrorClass::permanent, 67, "5.1.3"},
    };
    for (const Row& row : rows) {
        BOOST_TEST_CONTEXT("cause " << static_cast<int>(row.cause)) {
            Failure f;
            f.cause = row.cause;
            f.stage = row.stage;
            f.error_class = row.cls;
            f.detail = "the reason\nwith a newline";
            Outcome o = decide(f);
            BOOST_TEST(o.exit_status == row.exit_status);
            BOOST_TEST(o.dsn() == row.dsn);
            BOOST_TEST(o.status_line == std::string(row.dsn) + " the reason with a newline");
        }
    }
}

BOOST_AUTO_TEST_CASE(invalid_recipient_among_valid_ones_defers) {
    // One exit status covers every recipient of the delivery: bouncing would
    // bounce the valid ones too (all-or-nothing, like a RCPT refusal).
    Failure f = local_failure(Cause::invalid_recipient, Stage::none,
                              "recipient <x> is not a valid address: it has no '@' and domain");
    f.others_accepted = true;
    Outcome o = decide(f);
    BOOST_TEST(o.exit_status == kExTempFail);
    BOOST_TEST(o.dsn() == "4.1.3");
    BOOST_TEST(o.status_line.find("o365_destination_recipient_limit = 1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(status_line_shape) {
    Failure f;
    f.cause = Cause::server_reply;
    f.stage = Stage::rcpt_to;
    f.peer = kPeer;
    f.recipient = "bob@example.org";
    f.reply = reply("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found");
    BOOST_TEST(decide(f).status_line ==
               "5.1.10 host smtp.office365.com[52.96.0.1]:587 said: 550 5.1.10 "
               "RESOLVER.ADR.RecipientNotFound; Recipient not found (in reply to RCPT TO command "
               "for <bob@example.org>)");

    f.stage = Stage::auth;
    f.recipient.clear();
    f.after_refresh = true;
    f.reply = reply("535 5.7.3 Authentication unsuccessful");
    BOOST_TEST(decide(f).status_line ==
               "4.7.3 host smtp.office365.com[52.96.0.1]:587 said: 535 5.7.3 Authentication "
               "unsuccessful (in reply to AUTH command); again after a forced token refresh");

    f.after_refresh = false;
    f.stage = Stage::greeting;
    f.reply = reply("554 5.7.1 go away");
    BOOST_TEST(decide(f).status_line ==
               "4.7.1 host smtp.office365.com[52.96.0.1]:587 refused to talk to me: 554 5.7.1 go "
               "away");

    // A very long reply is cut to a bounded line.
    f.reply = reply("550 5.7.1 " + std::string(3000, 'x'));
    BOOST_TEST(decide(f).status_line.size() <= 1000u);
}

BOOST_AUTO_TEST_CASE(delivered_line) {
    Outcome o = delivered(reply("250 2.0.0 OK <id@x> [Hostname=AM0PR01]"), kPeer);
    BOOST_TEST(o.exit_status == 0);
    BOOST_TEST(o.status_line ==
               "2.0.0 host smtp.office365.com[52.96.0.1]:587 said: 250 2.0.0 OK <id@x> "
               "[Hostname=AM0PR01]");
    BOOST_TEST(delivered(reply("250 queued"), kPeer).dsn() == "2.0.0");
}

// --- Microsoft Graph answers (docs/design.md section "Graph delivery") ---
const char* kGraphPeer = "graph.microsoft.com[20.190.0.1]:443";

struct GraphRowCase {
    Stage stage;
    long status;
    const char* code;
    const char* message;
    int exit_status;
    const char* dsn;
    bool several_recipients = false;
    const char* fix = nullptr;  // the account-level note names this
};

// clang-format off
const GraphRowCase kGraphCases[] = {
    // 401 after the one forced token refresh
    {Stage::graph_sendmail, 401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.", 75, "4.7.0"},
    // account level: temporary, with the fix
    {Stage::graph_sendmail, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", 75, "4.7.0", false, "o365relayctl check"},
    {Stage::graph_create, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", 75, "4.7.0", false, "Mail.Send"},
    {Stage::graph_sendmail, 404, "ErrorInvalidUser", "The requested user 'x@contoso.com' is invalid.", 75, "4.7.0", false, "o365relayctl check"},
    {Stage::graph_sendmail, 404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.", 75, "4.7.0", false, "method = smtp"},
    {Stage::graph_sendmail, 403, "ErrorQuotaExceeded", "Mailbox has exceeded maximum mailbox size.", 75, "4.2.2", false, "quota"},
    {Stage::graph_send, 507, "ErrorQuotaExceeded", "Mailbox has exceeded maximum mailbox size.", 75, "4.2.2", false, "quota"},
    {Stage::graph_sendmail, 403, "SomethingElse", "Forbidden", 75, "4.7.0", false, "o365relayctl check"},
    // this sender
    {Stage::graph_sendmail, 403, "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.", 69, "5.7.60"},
    {Stage::graph_send, 403, "ErrorSendAsDenied", "no right", 69, "5.7.60"},
    // recipients: permanent alone, all-or-nothing with several
    {Stage::graph_sendmail, 400, "ErrorInvalidRecipients", "A message can't be sent because it contains no recipients", 67, "5.1.3"},
    {Stage::graph_send, 400, "ErrorInvalidRecipients", "At least one recipient is not valid.", 67, "5.1.3"},
    {Stage::graph_sendmail, 400, "ErrorInvalidRecipients", "At least one recipient is not valid.", 75, "4.1.3", true},
    {Stage::graph_send, 400, "ErrorRecipientNotFound", "not found", 67, "5.1.1"},
    // content and size
    {Stage::graph_sendmail, 400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.", 65, "5.6.0"},
    {Stage::graph_create, 400, "ErrorMimeContentConversionFailed", "conversion failed", 65, "5.6.0"},
    {Stage::graph_sendmail, 413, "ErrorRequestEntityTooLarge", "The maximum request length supported is 4MB.", 65, "5.3.4"},
    {Stage::graph_sendmail, 413, "", "", 65, "5.3.4"},
    // throttling and server errors
    {Stage::graph_sendmail, 429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", 75, "4.7.0", false, "Retry-After"},
    {Stage::graph_patch, 429, "ApplicationThrottled", "Application is over its RequestRate limit.", 75, "4.7.0", false, "Retry-After"},
    {Stage::graph_sendmail, 500, "InternalServerError", "oops", 75, "4.4.0"},
    {Stage::graph_send, 503, "ServiceUnavailable", "busy", 75, "4.4.0"},
    {Stage::graph_sendmail, 504, "", "<html>gateway</html>", 75, "4.4.0"},
    // anything else: never a bounce
    {Stage::graph_patch, 400, "BadRequest", "Resource not found for the segment 'x'.", 75, "4.5.0"},
    {Stage::graph_create, 415, "", "", 75, "4.5.0"},
    {Stage::graph_send, 404, "ErrorItemNotFound", "The specified object was not found in the store.", 75, "4.5.0"},
};
// clang-format on

BOOST_AUTO_TEST_CASE(graph_answers) {
    for (const GraphRowCase& row : kGraphCases) {
        BOOST_TEST_CONTEXT(stage_name(row.stage) << ": " << row.status << " " << row.code) {
            Failure f;
            f.cause = Cause::graph_reply;
            f.stage = row.stage;
            f.peer = kGraphPeer;
            f.http_status = row.status;
            f.graph_code = row.code;
            f.graph_message = row.message;
            f.others_accepted = row.several_recipients;
            Outcome o = decide(f);
            BOOST_TEST(o.exit_status == row.exit_status);
            BOOST_TEST(o.dsn() == row.dsn);
            BOOST_TEST((o.status_line[0] == '4') == (o.exit_status == kExTempFail));
            BOOST_TEST(o.status_line.find(std::string("host ") + kGraphPeer + " said: HTTP " +
                                          std::to_string(row.status)) != std::string::npos);
            BOOST_TEST(o.status_line.find(row.code) != std::string::npos);
            BOOST_TEST(o.status_line.find(std::string(row.message).substr(0, 40)) !=
                       std::string::npos);
            BOOST_TEST(o.status_line.find(std::string("(in reply to ") +
                                          std::string(stage_command(row.stage)) + ")") !=
                       std::string::npos);
            if (row.fix) BOOST_TEST(o.status_line.find(row.fix) != std::string::npos);
        }
    }
}

BOOST_AUTO_TEST_CASE(graph_status_line_shape) {
    Failure f;
    f.cause = Cause::graph_reply;
    f.stage = Stage::graph_sendmail;
    f.peer = kGraphPeer;
    f.http_status = 403;
    f.graph_code = "ErrorSendAsDenied";
    f.graph_message = "no right";
    BOOST_TEST(decide(f).status_line ==
               "5.7.60 host graph.microsoft.com[20.190.0.1]:443 said: HTTP 403 ErrorSendAsDenied: "
               "no right (in reply to sendMail)");
    f.http_status = 401;
    f.graph_code = "InvalidAuthenticationToken";
    f.graph_message = "expired";
    f.after_refresh = true;
    BOOST_TEST(decide(f).status_line.find("; again after a forced token refresh") !=
               std::string::npos);
    BOOST_TEST(delivered_by_graph(202, Stage::graph_send, kGraphPeer).status_line ==
               "2.0.0 host graph.microsoft.com[20.190.0.1]:443 said: HTTP 202 Accepted (in reply "
               "to draft send)");
}

BOOST_AUTO_TEST_CASE(graph_local_failures) {
    struct Row {
        Cause cause;
        Stage stage;
        int exit_status;
        const char* dsn;
    };
    const Row rows[] = {
        {Cause::throttled, Stage::graph_sendmail, 75, "4.7.0"},
        {Cause::message_too_big, Stage::none, 65, "5.3.4"},
        // a connection lost after the whole request was sent: temporary
        {Cause::lost_connection, Stage::graph_sendmail, 75, "4.4.2"},
        {Cause::timeout, Stage::graph_send, 75, "4.4.2"},
        {Cause::connect, Stage::graph_create, 75, "4.4.1"},
        {Cause::tls, Stage::graph_sendmail, 75, "4.7.5"},
        {Cause::deadline, Stage::graph_patch, 75, "4.4.7"},
        {Cause::token, Stage::graph_sendmail, 75, "4.7.0"},
    };
    for (const Row& row : rows) {
        BOOST_TEST_CONTEXT("cause " << static_cast<int>(row.cause)) {
            Outcome o = decide(local_failure(row.cause, row.stage, "why"));
            BOOST_TEST(o.exit_status == row.exit_status);
            BOOST_TEST(o.dsn() == row.dsn);
        }
    }
}

BOOST_AUTO_TEST_CASE(token_refresh_rule) {
    struct Row {
        Stage stage;
        const char* wire;
        bool refresh;
    };
    const Row rows[] = {
        {Stage::auth, "535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod]",
         true},
        {Stage::auth,
         "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
         "disabled for the Tenant.",
         false},
        {Stage::auth, "454 4.7.0 Temporary authentication failure", false},
        {Stage::mail_from, "535 5.7.3 Authentication unsuccessful", false},
    };
    for (const auto& r : rows) {
        Failure f;
        f.cause = Cause::server_reply;
        f.stage = r.stage;
        f.reply = reply(r.wire);
        BOOST_TEST_CONTEXT(r.wire) {
            BOOST_TEST(token_refresh_may_help(f) == r.refresh);
        }
    }
    BOOST_TEST(!token_refresh_may_help(local_failure(Cause::timeout, Stage::auth, "timed out")));
}

BOOST_AUTO_TEST_SUITE_END()
