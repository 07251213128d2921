#include "failure.hpp"

namespace o365 {

std::string_view stage_name(Stage s) noexcept {
    switch (s) {
        case Stage::none:
            return "setup";
        case Stage::connect:
            return "connect";
        case Stage::greeting:
            return "greeting";
        case Stage::ehlo:
            return "EHLO";
        case Stage::starttls:
            return "STARTTLS";
        case Stage::tls_handshake:
            return "TLS handshake";
        case Stage::ehlo_after_tls:
            return "EHLO after STARTTLS";
        case Stage::auth:
            return "AUTH";
        case Stage::mail_from:
            return "MAIL FROM";
        case Stage::rcpt_to:
            return "RCPT TO";
        case Stage::data:
            return "DATA";
        case Stage::sending_message:
            return "message content";
        case Stage::end_of_data:
            return "end of data";
        case Stage::quit:
            return "QUIT";
        case Stage::done:
            return "done";
        case Stage::graph_sendmail:
            return "sendMail";
        case Stage::graph_create:
            return "draft creation";
        case Stage::graph_patch:
            return "draft recipients";
        case Stage::graph_send:
            return "draft send";
    }
    return "?";
}

std::string_view stage_command(Stage s) noexcept {
    switch (s) {
        case Stage::greeting:
            return "initial greeting";
        case Stage::ehlo:
        case Stage::ehlo_after_tls:
            return "EHLO";
        case Stage::starttls:
            return "STARTTLS";
        case Stage::auth:
            return "AUTH";
        case Stage::mail_from:
            return "MAIL FROM";
        case Stage::rcpt_to:
            return "RCPT TO";
        case Stage::data:
            return "DATA";
        case Stage::sending_message:
        case Stage::end_of_data:
            return "end of DATA";
        case Stage::quit:
            return "QUIT";
        case Stage::graph_sendmail:
        case Stage::graph_create:
        case Stage::graph_patch:
        case Stage::graph_send:
            return stage_name(s);
        default:
            return "";
    }
}

}  // namespace o365
