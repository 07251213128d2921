// smtp_client: o365relay's own SMTP submission client: one connection, one
// message, as an explicit state machine over non-blocking sockets and OpenSSL.
//
// Stages (failure.hpp's Stage), in order: connect, greeting, ehlo, starttls,
// tls_handshake, ehlo_after_tls, auth, mail_from, rcpt_to, data,
// sending_message, end_of_data, done; quit from anywhere. Only enter() changes
// the stage, and it refuses any other transition (a bug, not a peer's fault).
//
// Contract:
// - open(): connects to every address getaddrinfo() gives for [smtp] host in
//   turn (connect_timeout each), reads the greeting, EHLO helo_name (default:
//   the host's FQDN), STARTTLS (MANDATORY: when it is not offered or fails, no
//   AUTH and no mail is ever sent in clear), TLS >= 1.2 with the certificate
//   chain and the host name verified, EHLO again, then AUTH XOAUTH2: the command
//   alone, and after the 334 the base64 of "user=<mailbox>\1auth=Bearer
//   <token>\1\1". A 334 carrying an error (base64 JSON) is answered with an
//   empty line and the 535 that follows is the result. Data the server sends
//   after its 220 to STARTTLS (command injection) is a protocol failure.
// - send(): MAIL FROM with SIZE= (when advertised and the size is known),
//   BODY=8BITMIME (when the message has 8-bit bytes and the server offers it)
//   and SMTPUTF8 (when an address needs it; when the server lacks it the
//   message is not sent: Cause::smtputf8_unsupported); RCPT TO for each
//   recipient; DATA. With PIPELINING, MAIL, all RCPTs and DATA go in one write.
//   ALL-OR-NOTHING: when any recipient is refused, no message is sent to the
//   others (before DATA; when a pipelined DATA was already answered 354, the
//   connection is closed without the final "." so that the server discards the
//   transaction). The message comes from a MessageSource chunk by chunk (never
//   whole in memory); the client adds CRLF if the last chunk lacks it, then ".".
// - Timeouts: command_timeout for the greeting, the TLS handshake and each
//   reply; data_timeout for each write of message data and for the reply after
//   the end of data; connect_timeout per TCP connect; and the overall deadline
//   given to the constructor bounds everything (Cause::deadline).
// - Results are values: open() returns the Failure or nothing; send() returns
//   per-recipient replies, the final reply, or the Failure with its stage. Every
//   failure text names the stage and the peer, e.g. "lost connection with
//   smtp.office365.com[52.96.0.1]:587 while sending end of data" or "timed out
//   after 60 s waiting for reply to RCPT TO from ...".
// - Secrets: the token and the XOAUTH2 blob are registered with add_secret()
//   and never logged (the protocol trace at debug level shows "[XOAUTH2]").
// - SIGPIPE: plain writes use MSG_NOSIGNAL, but OpenSSL writes with send(2)
//   without it: the process must ignore SIGPIPE (the transport does).
// - getaddrinfo() is blocking and bounded by the system resolver's timeouts.
// Thread-safety: one SmtpClient per thread; distinct clients are independent.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "failure.hpp"
#include "smtp_reply.hpp"

namespace o365 {

// Where the message bytes come from, already in wire form: CRLF line ends,
// dot-stuffed (message_stream.hpp). next_chunk() returns the next bytes,
// empty at the end; the view stays valid until the next call. Throws Error on
// a read failure.
class MessageSource {
  public:
    virtual ~MessageSource() = default;
    virtual std::string_view next_chunk() = 0;
};

struct Envelope {
    std::string sender;  // MAIL FROM address without <>; "" for the null sender
    std::vector<std::string> recipients;
    bool eight_bit = false;  // the message has bytes >= 0x80
    std::uint64_t size = 0;  // wire size in bytes; 0: unknown (no SIZE=)
};

struct Credentials {
    std::string user;   // the mailbox (XOAUTH2 user=)
    std::string token;  // the access token
};

// What the server offered in its EHLO reply.
struct Extensions {
    bool starttls = false;
    bool pipelining = false;
    bool eightbitmime = false;
    bool smtputf8 = false;
    bool enhancedstatuscodes = false;
    bool size = false;
    std::uint64_t size_limit = 0;   // 0: no limit announced
    std::vector<std::string> auth;  // mechanisms, upper-case
    bool has_auth(std::string_view mech) const;
};

// Parses the lines of an EHLO reply (the first line is the server's name).
Extensions parse_ehlo(const SmtpReply& reply);

// The host's fully qualified name (gethostname + canonical name), or the plain
// host name when that cannot be found.
std::string local_fqdn();

struct RecipientReply {
    std::string address;
    SmtpReply reply;
    bool accepted() const { return reply.code >= 200 && reply.code < 300; }
};

struct SendResult {
    // Empty when the message was accepted (final_reply is then set). Otherwise
    // the failure; for refused recipients: one Failure per refused recipient
    // (Cause::server_reply, Stage::rcpt_to, others_accepted set), in order.
    std::vector<Failure> failures;
    std::vector<RecipientReply> recipients;  // every RCPT TO reply received
    std::optional<SmtpReply> final_reply;    // the reply after end of data
    bool delivered() const { return failures.empty() && final_reply.has_value(); }
};

class SmtpClient {
  public:
    using Clock = std::chrono::steady_clock;

    // The deadline bounds open(), send() and quit() together.
    SmtpClient(SmtpSettings settings, Clock::time_point deadline);
    ~SmtpClient();
    SmtpClient(const SmtpClient&) = delete;
    SmtpClient& operator=(const SmtpClient&) = delete;

    // Connect .. AUTH. nullopt when authenticated.
    std::optional<Failure> open(const Credentials& credentials);
    // MAIL FROM .. end of data; only after a successful open(), once.
    SendResult send(const Envelope& envelope, MessageSource& message);
    // QUIT and its reply (bounded by command_timeout and the deadline), then
    // close. Never fails; a no-op when the connection is already closed.
    void quit() noexcept;

    Stage stage() const;
    // "host[address]:port" of the connected server; "host:port" before.
    const std::string& peer() const;
    const Extensions& extensions() const;
    // Seconds spent in open() (connection set-up) and in send() (transmission).
    double setup_seconds() const;
    double transfer_seconds() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace o365
