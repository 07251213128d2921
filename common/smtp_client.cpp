#include "smtp_client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

#include "address.hpp"
#include "base64.hpp"
#include "log.hpp"
#include "tls.hpp"
#include "unique_fd.hpp"

namespace o365 {

namespace {

using Clock = SmtpClient::Clock;

// Thrown inside the client, turned into a value by open()/send().
struct Stop : std::exception {
    explicit Stop(Failure f) : failure(std::move(f)) {}
    const char* what() const noexcept override { return failure.detail.c_str(); }
    Failure failure;
};

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

std::string addr_text(const sockaddr* sa) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
    return buf;
}

// The allowed transitions of the state machine: from -> to.
bool allowed(Stage from, Stage to) {
    if (to == Stage::quit) return true;
    switch (from) {
        case Stage::none:
            return to == Stage::connect;
        case Stage::connect:
            return to == Stage::greeting;
        case Stage::greeting:
            return to == Stage::ehlo;
        case Stage::ehlo:
            return to == Stage::starttls;
        case Stage::starttls:
            return to == Stage::tls_handshake;
        case Stage::tls_handshake:
            return to == Stage::ehlo_after_tls;
        case Stage::ehlo_after_tls:
            return to == Stage::auth;
        case Stage::auth:
            return to == Stage::mail_from;
        case Stage::mail_from:
            return to == Stage::rcpt_to;
        case Stage::rcpt_to:
            return to == Stage::data;
        case Stage::data:
            return to == Stage::sending_message;
        case Stage::sending_message:
            return to == Stage::end_of_data;
        case Stage::end_of_data:
            return to == Stage::done;
        case Stage::done:
        case Stage::quit:
        case Stage::graph_sendmail:  // not SMTP stages
        case Stage::graph_create:
        case Stage::graph_patch:
        case Stage::graph_send:
            return false;
    }
    return false;
}

}  // namespace

bool Extensions::has_auth(std::string_view mech) const {
    std::string m = upper(mech);
    return std::find(auth.begin(), auth.end(), m) != auth.end();
}

Extensions parse_ehlo(const SmtpReply& reply) {
    Extensions ext;
    for (std::size_t i = 1; i < reply.lines.size(); ++i) {
        std::string line = upper(reply.lines[i]);
        std::string kw = line.substr(0, line.find_first_of(" ="));
        std::string params = kw.size() < line.size() ? line.substr(kw.size() + 1) : "";
        if (kw == "STARTTLS")
            ext.starttls = true;
        else if (kw == "PIPELINING")
            ext.pipelining = true;
        else if (kw == "8BITMIME")
            ext.eightbitmime = true;
        else if (kw == "SMTPUTF8")
            ext.smtputf8 = true;
        else if (kw == "ENHANCEDSTATUSCODES")
            ext.enhancedstatuscodes = true;
        else if (kw == "SIZE") {
            ext.size = true;
            try {
                if (!params.empty()) ext.size_limit = std::stoull(params);
            } catch (...) {
                ext.size_limit = 0;
            }
        } else if (kw == "AUTH") {
            std::size_t p = 0;
            while (p < params.size()) {
                std::size_t e = params.find(' ', p);
                if (e == std::string::npos) e = params.size();
                if (e > p) {
                    std::string m = params.substr(p, e - p);
                    if (std::find(ext.auth.begin(), ext.auth.end(), m) == ext.auth.end())
                        ext.auth.push_back(m);
                }
                p = e + 1;
            }
        }
    }
    return ext;
}

std::string local_fqdn() {
    char host[256] = "";
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "localhost";
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string name = host;
    if (::getaddrinfo(host, nullptr, &hints, &res) == 0 && res) {
        if (res->ai_canonname && std::strchr(res->ai_canonname, '.')) name = res->ai_canonname;
        ::freeaddrinfo(res);
    }
    return name;
}

struct SmtpClient::Impl {
    SmtpSettings settings;
    Clock::time_point deadline;
    Stage stage = Stage::none;
    std::string peer;
    UniqueFd fd;
    std::unique_ptr<TlsContext> tls_ctx;
    std::unique_ptr<TlsStream> tls;
    ReplyParser parser;
    Extensions ext;
    bool closed = false;
    bool authenticated = false;
    double setup_s = 0, transfer_s = 0;
    char buf[16384];

    Impl(SmtpSettings s, Clock::time_point d) : settings(std::move(s)), deadline(d) {
        peer = settings.host + ":" + std::to_string(settings.port);
    }

    // The one function that changes the state.
    void enter(Stage next) {
        if (!allowed(stage, next))
            throw Stop(local_failure(Cause::internal, stage,
                                     "internal error: SMTP client cannot go from " +
                                         std::string(stage_name(stage)) + " to " +
                                         std::string(stage_name(next)),
                                     peer));
        if (log_enabled(LogLevel::debug))
            log_debug("smtp " + peer + ": stage " + std::string(stage_name(next)));
        stage = next;
    }

    [[noreturn]] void stop(Cause cause, const std::string& detail) {
        // After a timeout, a lost connection or a protocol error the session is
        // in an unknown state: quit() then closes without QUIT.
        if (cause == Cause::timeout || cause == Cause::deadline ||
            cause == Cause::lost_connection || cause == Cause::protocol || cause == Cause::tls)
            closed = true;
        Failure f;
        f.cause = cause;
        f.stage = stage;
        f.detail = detail;
        f.peer = peer;
        throw Stop(std::move(f));
    }

    [[noreturn]] void refused(const SmtpReply& r) {
        Failure f;
        f.cause = Cause::server_reply;
        f.stage = stage;
        f.reply.emplace(r);
        f.detail = "host " + peer + " said: " + r.text();
        f.peer = peer;
        throw Stop(std::move(f));
    }

    // Waits until fd is ready for `events`, at most `seconds` and never past the
    // deadline. `what` completes "timed out after N s <what>".
    void wait(short events, int seconds, const std::string& what) {
        Clock::time_point limit = Clock::now() + std::chrono::seconds(seconds);
        bool by_deadline = deadline <= limit;
        if (by_deadline) limit = deadline;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(limit - Clock::now());
            if (left.count() <= 0) {
                if (by_deadline) stop(Cause::deadline, "delivery deadline reached while " + what);
                stop(Cause::timeout, "timed out after " + std::to_string(seconds) + " s " + what);
            }
            pollfd p{fd.get(), events, 0};
            int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
            if (r > 0) return;  // ready, or an error/hang-up the next I/O call reports
            if (r < 0 && errno != EINTR)
                stop(Cause::internal, std::string("poll: ") + std::strerror(errno));
        }
    }

    [[noreturn]] void lost(const std::string& what, int err = 0) {
        std::string d = "lost connection with " + peer + " " + what;
        if (err) d += std::string(" (") + std::strerror(err) + ")";
        closed = true;
        stop(Cause::lost_connection, d);
    }

    // Writes all of `data`; each write waits at most `seconds`.
    void write_all(std::string_view data, int seconds, const std::string& what) {
        while (!data.empty()) {
            std::size_t n = 0;
            if (tls) {
                TlsStream::Want w;
                try {
                    w = tls->write(data.data(), data.size(), n);
                } catch (const Error& e) {
                    lost("while " + what + ": " + e.what());
                }
                if (w == TlsStream::Want::read) {
                    wait(POLLIN, seconds, what + " to " + peer);
                    continue;
                }
                if (w == TlsStream::Want::write) {
                    wait(POLLOUT, seconds, what + " to " + peer);
                    continue;
                }
            } else {
                ssize_t r = ::send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
                if (r < 0) {
                    if (errno == EINTR) continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        wait(POLLOUT, seconds, what + " to " + peer);
                        continue;
                    }
                    lost("while " + what, errno);
                }
                n = static_cast<std::size_t>(r);
            }
            data.remove_prefix(n);
        }
    }

    // Reads some bytes into the parser; waits at most `seconds`.
    void read_some(int seconds, const std::string& what) {
        for (;;) {
            std::size_t got = 0;
            if (tls) {
                TlsStream::Want w;
                try {
                    w = tls->read(buf, sizeof buf, got);
                } catch (const Error& e) {
                    lost("while " + what + ": " + e.what());
                }
                if (w == TlsStream::Want::read) {
                    wait(POLLIN, seconds, what + " from " + peer);
                    continue;
                }
                if (w == TlsStream::Want::write) {
                    wait(POLLOUT, seconds, what + " from " + peer);
                    continue;
                }
            } else {
                ssize_t r = ::recv(fd.get(), buf, sizeof buf, 0);
                if (r < 0) {
                    if (errno == EINTR) continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        wait(POLLIN, seconds, what + " from " + peer);
                        continue;
                    }
                    lost("while " + what, errno);
                }
                got = static_cast<std::size_t>(r);
            }
            if (got == 0) lost("while " + what);
            try {
                parser.feed(std::string_view(buf, got));
            } catch (const Error& e) {
                stop(Cause::protocol, std::string(e.what()) + " (host " + peer + ", " + what + ")");
            }
            return;
        }
    }

    SmtpReply read_reply(int seconds) {
        std::string what = "waiting for reply to " + std::string(stage_command(stage));
        if (stage == Stage::greeting) what = "waiting for the greeting";
        while (parser.pending() == 0)
            read_some(seconds, what);
        SmtpReply r = *parser.next();
        if (log_enabled(LogLevel::debug)) log_debug("smtp " + peer + ": < " + r.text());
        return r;
    }

    void command(const std::string& line) {
        if (line.find_first_of("\r\n") != std::string::npos || has_control_chars(line))
            stop(Cause::internal, "refusing to send a command with control characters");
        if (log_enabled(LogLevel::debug)) log_debug("smtp " + peer + ": > " + line);
        write_all(line + "\r\n", settings.command_timeout,
                  "sending " + std::string(stage_command(stage)));
    }

    void connect() {
        enter(Stage::connect);
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        addrinfo* res = nullptr;
        std::string port = std::to_string(settings.port);
        int rc = ::getaddrinfo(settings.host.c_str(), port.c_str(), &hints, &res);
        if (rc != 0)
            stop(Cause::resolve, "cannot resolve " + settings.host + ": " + ::gai_strerror(rc));
        std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(res, ::freeaddrinfo);
        std::string errors;
        for (addrinfo* ai = res; ai; ai = ai->ai_next) {
            peer = settings.host + "[" + addr_text(ai->ai_addr) + "]:" + port;
            fd.reset(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                              ai->ai_protocol));
            if (!fd) {
                errors +=
                    (errors.empty() ? "" : "; ") + std::string("socket: ") + std::strerror(errno);
                continue;
            }
            int r = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
            int err = r == 0 ? 0 : errno;
            if (err == EINPROGRESS) {
                try {
                    wait(POLLOUT, settings.connect_timeout, "connecting to " + peer);
                    socklen_t len = sizeof err;
                    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
                } catch (const Stop& s) {
                    if (s.failure.cause == Cause::deadline) throw;
                    errors += (errors.empty() ? "" : "; ") + s.failure.detail;
                    fd.reset();
                    continue;
                }
            }
            if (err == 0) return;
            errors += (errors.empty() ? "" : "; ") + std::string("connect to ") + peer + ": " +
                      std::strerror(err);
            fd.reset();
        }
        peer = settings.host + ":" + port;
        stop(Cause::connect, errors.empty() ? "no address for " + settings.host : errors);
    }

    void expect(const SmtpReply& r, int code) {
        if (r.code != code) refused(r);
    }

    void ehlo(const std::string& helo) {
        command("EHLO " + helo);
        SmtpReply r = read_reply(settings.command_timeout);
        if (r.code != 250) refused(r);
        ext = parse_ehlo(r);
    }

    void starttls() {
        enter(Stage::starttls);
        if (!ext.starttls)
            stop(Cause::starttls_unavailable,
                 "host " + peer +
                     " does not offer STARTTLS; o365relay never authenticates or sends mail "
                     "without TLS");
        command("STARTTLS");
        SmtpReply r = read_reply(settings.command_timeout);
        if (r.code != 220) refused(r);
        if (parser.pending() || parser.has_partial())
            stop(Cause::protocol, "host " + peer +
                                      " sent data after its reply to STARTTLS (possible command "
                                      "injection); not continuing");
        enter(Stage::tls_handshake);
        try {
            tls = std::make_unique<TlsStream>(*tls_ctx, fd.get(), settings.host);
        } catch (const Error& e) {
            stop(Cause::tls, std::string(e.what()) + " (host " + peer + ")");
        }
        for (;;) {
            TlsStream::Want w;
            try {
                w = tls->handshake();
            } catch (const Error& e) {
                closed = true;
                stop(Cause::tls, std::string(e.what()) + " (host " + peer + ")");
            }
            if (w == TlsStream::Want::none) break;
            wait(w == TlsStream::Want::read ? POLLIN : POLLOUT, settings.command_timeout,
                 "in the TLS handshake with " + peer);
        }
        if (log_enabled(LogLevel::debug))
            log_debug("smtp " + peer + ": TLS established, " + tls->description());
        parser = ReplyParser{};
    }

    void auth(const Credentials& c) {
        enter(Stage::auth);
        if (!ext.has_auth("XOAUTH2"))
            stop(Cause::auth_unavailable,
                 "host " + peer + " does not offer AUTH XOAUTH2 after STARTTLS");
        add_secret(c.token);
        std::string blob =
            base64_encode("user=" + c.user + "\x01" + "auth=Bearer " + c.token + "\x01\x01");
        add_secret(blob);
        command("AUTH XOAUTH2");
        SmtpReply r = read_reply(settings.command_timeout);
        if (r.code != 334) refused(r);
        if (log_enabled(LogLevel::debug)) log_debug("smtp " + peer + ": > [XOAUTH2 response]");
        write_all(blob + "\r\n", settings.command_timeout, "sending the XOAUTH2 response");
        r = read_reply(settings.command_timeout);
        if (r.code == 334) {
            // An error challenge (base64 JSON): answer with an empty line, then
            // the server sends its 535.
            write_all("\r\n", settings.command_timeout, "answering the XOAUTH2 error challenge");
            r = read_reply(settings.command_timeout);
        }
        if (r.code != 235) refused(r);
        authenticated = true;
    }

    void open(const Credentials& c) {
        auto t0 = Clock::now();
        try {
            tls_ctx = std::make_unique<TlsContext>(TlsContext::client(settings.ca_file));
        } catch (const Error& e) {
            stop(Cause::tls, e.what());
        }
        connect();
        enter(Stage::greeting);
        SmtpReply g = read_reply(settings.command_timeout);
        if (g.code != 220) refused(g);
        std::string helo = settings.helo_name.empty() ? local_fqdn() : settings.helo_name;
        enter(Stage::ehlo);
        ehlo(helo);
        starttls();
        enter(Stage::ehlo_after_tls);
        ehlo(helo);
        auth(c);
        setup_s = std::chrono::duration<double>(Clock::now() - t0).count();
    }

    std::string mail_command(const Envelope& env) {
        bool utf8 = has_8bit(env.sender);
        for (const auto& r : env.recipients)
            utf8 = utf8 || has_8bit(r);
        if (utf8 && !ext.smtputf8)
            stop(Cause::smtputf8_unsupported,
                 "an address needs SMTPUTF8, which host " + peer + " does not offer");
        std::string cmd = "MAIL FROM:<" + env.sender + ">";
        if (ext.size && env.size > 0) cmd += " SIZE=" + std::to_string(env.size);
        if (env.eight_bit && ext.eightbitmime) cmd += " BODY=8BITMIME";
        if (utf8) cmd += " SMTPUTF8";
        return cmd;
    }

    void check_line(const std::string& s) {
        if (s.find_first_of("\r\n") != std::string::npos || has_control_chars(s))
            stop(Cause::internal, "refusing to send a command with control characters");
    }

    void send(const Envelope& env, MessageSource& msg, SendResult& res) {
        auto t0 = Clock::now();
        if (!authenticated) stop(Cause::internal, "send() before a successful open()");
        enter(Stage::mail_from);
        std::string mail = mail_command(env);
        check_line(mail);
        for (const auto& r : env.recipients)
            check_line(r);
        if (env.recipients.empty()) stop(Cause::internal, "no recipients");

        if (ext.pipelining) {
            std::string group = mail + "\r\n";
            for (const auto& r : env.recipients)
                group += "RCPT TO:<" + r + ">\r\n";
            group += "DATA\r\n";
            if (log_enabled(LogLevel::debug))
                log_debug("smtp " + peer + ": > " + mail + " + " +
                          std::to_string(env.recipients.size()) + " RCPT TO + DATA (pipelined)");
            write_all(group, settings.command_timeout, "sending MAIL FROM");
        } else {
            command(mail);
        }
        SmtpReply mr = read_reply(settings.command_timeout);
        if (mr.code != 250) refused(mr);  // pipelined RCPT/DATA replies are left unread

        enter(Stage::rcpt_to);
        std::size_t accepted = 0;
        for (const auto& r : env.recipients) {
            if (!ext.pipelining) command("RCPT TO:<" + r + ">");
            SmtpReply rr = read_reply(settings.command_timeout);
            res.recipients.push_back(RecipientReply{r, rr});
            if (res.recipients.back().accepted()) ++accepted;
        }
        bool all_accepted = accepted == env.recipients.size();
        if (!all_accepted) {
            for (const auto& rr : res.recipients) {
                if (rr.accepted()) continue;
                Failure f;
                f.cause = Cause::server_reply;
                f.stage = Stage::rcpt_to;
                f.reply = rr.reply;
                f.peer = peer;
                f.recipient = rr.address;
                f.others_accepted = accepted > 0;
                f.detail = "host " + peer + " said: " + rr.reply.text();
                res.failures.push_back(std::move(f));
            }
        }

        enter(Stage::data);
        if (!all_accepted) {
            if (ext.pipelining) {
                // DATA went with the group; if it was accepted the server now
                // expects the message: close without the final "." so that the
                // transaction is discarded.
                try {
                    SmtpReply dr = read_reply(settings.command_timeout);
                    if (dr.code == 354) abort_connection();
                } catch (const Stop&) {
                    abort_connection();
                }
            }
            return;
        }
        if (!ext.pipelining) command("DATA");
        SmtpReply dr = read_reply(settings.command_timeout);
        if (dr.code != 354) refused(dr);

        enter(Stage::sending_message);
        char last[2] = {'\r', '\n'};  // an empty message needs no CRLF
        for (;;) {
            std::string_view chunk;
            try {
                chunk = msg.next_chunk();
            } catch (const Error& e) {
                abort_connection();
                stop(Cause::message_input, std::string("cannot read the message: ") + e.what());
            }
            if (chunk.empty()) break;
            write_all(chunk, settings.data_timeout, "sending message content");
            if (chunk.size() >= 2) {
                last[0] = chunk[chunk.size() - 2];
                last[1] = chunk.back();
            } else {
                last[0] = last[1];
                last[1] = chunk.back();
            }
        }
        enter(Stage::end_of_data);
        std::string eod = (last[0] == '\r' && last[1] == '\n') ? ".\r\n" : "\r\n.\r\n";
        write_all(eod, settings.data_timeout, "sending end of data");
        SmtpReply fr = read_reply(settings.data_timeout);
        if (fr.code != 250) refused(fr);
        res.final_reply = fr;
        enter(Stage::done);
        transfer_s = std::chrono::duration<double>(Clock::now() - t0).count();
    }

    void abort_connection() noexcept {
        if (tls) tls.reset();  // no close_notify: the peer sees an abrupt close
        fd.reset();
        closed = true;
    }

    void quit() noexcept {
        try {
            if (!fd || closed) {
                abort_connection();
                return;
            }
            bool had_tls = static_cast<bool>(tls);
            enter(Stage::quit);
            // Replies of pipelined commands left unread come before QUIT's.
            command("QUIT");
            for (int i = 0; i < 1000; ++i) {
                SmtpReply r = read_reply(std::min(settings.command_timeout, 10));
                if (r.code == 221) break;
            }
            if (had_tls && tls) tls->shutdown();
        } catch (...) {
        }
        abort_connection();
    }
};

SmtpClient::SmtpClient(SmtpSettings settings, Clock::time_point deadline)
    : impl_(std::make_unique<Impl>(std::move(settings), deadline)) {}

SmtpClient::~SmtpClient() {
    impl_->abort_connection();
}

std::optional<Failure> SmtpClient::open(const Credentials& credentials) {
    try {
        impl_->open(credentials);
        return std::nullopt;
    } catch (const Stop& s) {
        return s.failure;
    } catch (const std::exception& e) {
        return local_failure(Cause::internal, impl_->stage, e.what(), impl_->peer);
    }
}

SendResult SmtpClient::send(const Envelope& envelope, MessageSource& message) {
    SendResult res;
    try {
        impl_->send(envelope, message, res);
    } catch (const Stop& s) {
        res.failures.clear();
        res.failures.push_back(s.failure);
        res.final_reply.reset();
    } catch (const std::exception& e) {
        res.failures.clear();
        res.failures.push_back(local_failure(Cause::internal, impl_->stage, e.what(), impl_->peer));
        res.final_reply.reset();
    }
    return res;
}

void SmtpClient::quit() noexcept {
    impl_->quit();
}
Stage SmtpClient::stage() const {
    return impl_->stage;
}
const std::string& SmtpClient::peer() const {
    return impl_->peer;
}
const Extensions& SmtpClient::extensions() const {
    return impl_->ext;
}
double SmtpClient::setup_seconds() const {
    return impl_->setup_s;
}
double SmtpClient::transfer_seconds() const {
    return impl_->transfer_s;
}

}  // namespace o365
