// Unit tests of common/smtp_client (and common/smtp_session: the one refresh
// after a 535) against a scripted in-process SMTP server
// (one thread, blocking sockets, OpenSSL server side with the test CA of
// tests/fakes/make_test_ca.sh made at test time). Each test states what the
// server sends and checks what the client sent and what it reports.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "base64.hpp"
#include "delivery_status.hpp"
#include "log.hpp"
#include "smtp_client.hpp"
#include "smtp_session.hpp"

using namespace o365;
namespace fs = std::filesystem;

namespace {

// The test CA, made once per test binary.
const fs::path& ca_dir() {
    static fs::path dir = [] {
        fs::path d = fs::temp_directory_path() / ("o365-smtp-test-" + std::to_string(::getpid()));
        fs::path script = fs::path(__FILE__).parent_path() / ".." / "fakes" / "make_test_ca.sh";
        std::string cmd = "sh '" + script.string() + "' '" + d.string() + "'";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make_test_ca.sh failed");
        ::signal(SIGPIPE, SIG_IGN);
        std::atexit([] {
            std::error_code ec;
            fs::remove_all(
                fs::temp_directory_path() / ("o365-smtp-test-" + std::to_string(::getpid())), ec);
        });
        return d;
    }();
    return dir;
}

// One accepted connection, seen from the server.
class Peer {
  public:
    explicit Peer(int fd) : fd_(fd) {}
    ~Peer() {
        if (ssl_) SSL_free(ssl_);
        if (ctx_) SSL_CTX_free(ctx_);
        if (fd_ >= 0) ::close(fd_);
    }

    void send(const std::string& s) {
        if (fd_ < 0) return;
        if (ssl_)
            SSL_write(ssl_, s.data(), static_cast<int>(s.size()));
        else
            (void)::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
    }

    // One line without CRLF; nullopt at EOF.
    std::optional<std::string> line() {
        std::string l;
        for (;;) {
            if (pos_ == buf_.size() && !fill()) {
                if (l.empty()) return std::nullopt;
                return l;
            }
            char c = buf_[pos_++];
            if (c == '\n') {
                if (!l.empty() && l.back() == '\r') l.pop_back();
                log_.push_back(l);
                return l;
            }
            l += c;
        }
    }

    // The message until "\r\n.\r\n" (excluded, "." line removed); nullopt at EOF.
    std::optional<std::string> data() {
        std::string d;
        for (;;) {
            if (pos_ == buf_.size() && !fill()) return std::nullopt;
            d += buf_[pos_++];
            if (d == ".\r\n") return std::string();
            if (d.size() >= 5 && d.compare(d.size() - 5, 5, "\r\n.\r\n") == 0)
                return d.substr(0, d.size() - 3);
        }
    }

    bool starttls(const std::string& cert, const std::string& key, int max_version = 0) {
        ctx_ = SSL_CTX_new(TLS_server_method());
        if (max_version) {
            SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
            SSL_CTX_set_max_proto_version(ctx_, max_version);
            SSL_CTX_set_security_level(ctx_, 0);
        }
        SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str());
        SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM);
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd_);
        bool ok = SSL_accept(ssl_) == 1;
        ERR_clear_error();
        return ok;
    }

    void close() {
        if (ssl_) {
            SSL_free(ssl_);
            ssl_ = nullptr;
        }
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    const std::vector<std::string>& log() const { return log_; }
    bool tls() const { return ssl_ != nullptr; }

  private:
    bool fill() {
        if (fd_ < 0) return false;
        char b[4096];
        int n = ssl_ ? SSL_read(ssl_, b, sizeof b) : static_cast<int>(::recv(fd_, b, sizeof b, 0));
        if (n <= 0) return false;
        buf_.assign(b, static_cast<std::size_t>(n));
        pos_ = 0;
        return true;
    }

    int fd_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    std::string buf_;
    std::size_t pos_ = 0;
    std::vector<std::string> log_;
};

// Listens on 127.0.0.1:<free port>, runs `script` on the first connection.
class ScriptServer {
  public:
    explicit ScriptServer(std::function<void(Peer&)> script) {
        lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(lfd_, 4);
        socklen_t len = sizeof a;
        ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this, script] {
            int fd = ::accept(lfd_, nullptr, nullptr);
            if (fd < 0) return;
            Peer p(fd);
            try {
                script(p);
            } catch (...) {
            }
            std::lock_guard lk(mu_);
            log_ = p.log();
        });
    }
    ~ScriptServer() { join(); }
    void join() {
        if (thread_.joinable()) {
            ::shutdown(lfd_, SHUT_RDWR);
            thread_.join();
        }
        if (lfd_ >= 0) ::close(lfd_);
        lfd_ = -1;
    }
    int port() const { return port_; }
    // For a script that accepts further connections itself.
    int listen_fd() const { return lfd_; }
    // Every line the client sent (after join()).
    std::vector<std::string> lines() {
        join();
        std::lock_guard lk(mu_);
        return log_;
    }

  private:
    int lfd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::mutex mu_;
    std::vector<std::string> log_;
};

const char* kEhloPlain =
    "250-smtp.office365.test Hello [127.0.0.1]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n"
    "250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
    "250-CHUNKING\r\n250 SMTPUTF8\r\n";
const char* kEhloTls =
    "250-smtp.office365.test Hello [127.0.0.1]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n"
    "250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH LOGIN XOAUTH2\r\n250-8BITMIME\r\n"
    "250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";

const std::string kToken = "tok.en-value_0123456789abcdefghijklmnopqrstuvwxyz";
const std::string kUser = "noreply@contoso.com";

std::string expected_blob() {
    return base64_encode("user=" + kUser + "\x01" + "auth=Bearer " + kToken + "\x01\x01");
}

// Server side up to and including a successful AUTH. Returns false when the
// client did something else.
bool serve_to_auth(Peer& p, const char* ehlo_tls = kEhloTls) {
    p.send("220 smtp.office365.test Microsoft ESMTP MAIL Service ready\r\n");
    if (!p.line()) return false;
    p.send(kEhloPlain);
    if (p.line() != "STARTTLS") return false;
    p.send("220 2.0.0 SMTP server ready\r\n");
    if (!p.starttls((ca_dir() / "server.crt").string(), (ca_dir() / "server.key").string()))
        return false;
    if (!p.line()) return false;
    p.send(ehlo_tls);
    if (p.line() != "AUTH XOAUTH2") return false;
    p.send("334 \r\n");
    if (p.line() != expected_blob()) {
        p.send("535 5.7.3 Authentication unsuccessful\r\n");
        return false;
    }
    p.send("235 2.7.0 Authentication successful\r\n");
    return true;
}

void serve_quit(Peer& p) {
    while (auto l = p.line()) {
        if (*l == "QUIT") {
            p.send("221 2.0.0 Service closing transmission channel\r\n");
            return;
        }
    }
}

SmtpSettings settings(int port, const std::string& host = "localhost") {
    SmtpSettings s;
    s.host = host;
    s.port = port;
    s.helo_name = "client.example.org";
    s.ca_file = (ca_dir() / "ca.crt").string();
    s.connect_timeout = 2;
    s.command_timeout = 2;
    s.data_timeout = 2;
    s.deadline = 30;
    return s;
}

SmtpClient::Clock::time_point in(int seconds) {
    return SmtpClient::Clock::now() + std::chrono::seconds(seconds);
}

class StringSource : public MessageSource {
  public:
    explicit StringSource(std::vector<std::string> chunks) : chunks_(std::move(chunks)) {}
    std::string_view next_chunk() override {
        if (i_ == chunks_.size()) return {};
        return chunks_[i_++];
    }

  private:
    std::vector<std::string> chunks_;
    std::size_t i_ = 0;
};

bool any_starts(const std::vector<std::string>& v, const std::string& prefix) {
    for (const auto& l : v)
        if (l.rfind(prefix, 0) == 0) return true;
    return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(smtp_client)

BOOST_AUTO_TEST_CASE(ehlo_parsing) {
    ReplyParser p;
    p.feed(kEhloTls);
    Extensions e = parse_ehlo(*p.next());
    BOOST_TEST(e.pipelining);
    BOOST_TEST(e.eightbitmime);
    BOOST_TEST(e.smtputf8);
    BOOST_TEST(e.size);
    BOOST_TEST(e.size_limit == 157286400u);
    BOOST_TEST(!e.starttls);
    BOOST_TEST(e.has_auth("xoauth2"));
    BOOST_TEST(e.has_auth("LOGIN"));
    BOOST_TEST(!e.has_auth("PLAIN"));
}

BOOST_AUTO_TEST_CASE(delivers_with_pipelining_8bitmime_and_size) {
    std::string message_seen;
    ScriptServer srv([&](Peer& p) {
        if (!serve_to_auth(p)) return;
        // MAIL, RCPT, RCPT, DATA in one group
        for (int i = 0; i < 4; ++i)
            if (!p.line()) return;
        p.send(
            "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n354 Start "
            "mail input; end with <CRLF>.<CRLF>\r\n");
        auto d = p.data();
        if (!d) return;
        message_seen = *d;
        p.send("250 2.0.0 OK <id@x> [Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com]\r\n");
        serve_quit(p);
    });
    std::string logfile = (ca_dir() / "client.log").string();
    log_init("file:" + logfile, LogLevel::debug, "test");
    SmtpClient c(settings(srv.port()), in(30));
    auto f = c.open({kUser, kToken});
    BOOST_REQUIRE_MESSAGE(!f, (f ? f->detail : ""));
    BOOST_TEST(c.peer() == "localhost[127.0.0.1]:" + std::to_string(srv.port()));
    Envelope env{"app@apps.contoso.com", {"bob@example.org", "eve@example.net"}, true, 17};
    StringSource src({"Subject: x\r\n\r\n", "caf\xc3\xa9\r\n"});
    SendResult r = c.send(env, src);
    c.quit();
    log_init("stderr", LogLevel::info, "test");
    BOOST_REQUIRE_MESSAGE(r.delivered(), (r.failures.empty() ? "" : r.failures[0].detail));
    BOOST_TEST(r.final_reply->enhanced == "2.0.0");
    BOOST_TEST(r.recipients.size() == 2u);
    BOOST_TEST(message_seen == "Subject: x\r\n\r\ncaf\xc3\xa9\r\n");
    auto lines = srv.lines();
    BOOST_TEST(lines.at(0) == "EHLO client.example.org");
    BOOST_TEST(lines.at(1) == "STARTTLS");
    BOOST_TEST(lines.at(2) == "EHLO client.example.org");
    BOOST_TEST(lines.at(3) == "AUTH XOAUTH2");
    BOOST_TEST(lines.at(5) == "MAIL FROM:<app@apps.contoso.com> SIZE=17 BODY=8BITMIME");
    BOOST_TEST(lines.at(6) == "RCPT TO:<bob@example.org>");
    BOOST_TEST(lines.at(7) == "RCPT TO:<eve@example.net>");
    BOOST_TEST(lines.at(8) == "DATA");
    BOOST_TEST(lines.back() == "QUIT");
    BOOST_TEST(c.setup_seconds() > 0.0);
    // Neither the token nor the XOAUTH2 blob reached the (debug) log.
    std::ifstream in_log(logfile);
    std::stringstream ss;
    ss << in_log.rdbuf();
    std::string logtext = ss.str();
    BOOST_TEST(logtext.find("MAIL FROM:<app@apps.contoso.com>") != std::string::npos);
    BOOST_TEST(logtext.find(kToken) == std::string::npos);
    BOOST_TEST(logtext.find(expected_blob()) == std::string::npos);
    BOOST_TEST(logtext.find(expected_blob().substr(0, 40)) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(without_pipelining_one_command_at_a_time) {
    ScriptServer srv([&](Peer& p) {
        std::string ehlo = kEhloTls;
        ehlo.replace(ehlo.find("250-PIPELINING\r\n"), 16, "");
        if (!serve_to_auth(p, ehlo.c_str())) return;
        if (p.line() != "MAIL FROM:<a@contoso.com>") return;  // no SIZE=0, no BODY=
        p.send("250 2.1.0 Sender OK\r\n");
        if (!p.line()) return;
        p.send("250 2.1.5 Recipient OK\r\n");
        if (p.line() != "DATA") return;
        p.send("354 go\r\n");
        if (!p.data()) return;
        p.send("250 2.0.0 OK\r\n");
        serve_quit(p);
    });
    SmtpClient c(settings(srv.port()), in(30));
    BOOST_REQUIRE(!c.open({kUser, kToken}));
    StringSource src({"a\r\nb"});  // no final CRLF: the client adds one
    SendResult r = c.send(Envelope{"a@contoso.com", {"b@example.org"}, false, 0}, src);
    c.quit();
    BOOST_TEST(r.delivered());
    BOOST_TEST(srv.lines().back() == "QUIT");
}

BOOST_AUTO_TEST_CASE(no_starttls_means_no_auth_and_no_mail) {
    ScriptServer srv([&](Peer& p) {
        p.send("220 ready\r\n");
        p.line();
        std::string ehlo = kEhloPlain;
        ehlo.replace(ehlo.find("250-STARTTLS\r\n"), 14, "");
        p.send(ehlo);
        serve_quit(p);
    });
    SmtpClient c(settings(srv.port()), in(30));
    auto f = c.open({kUser, kToken});
    c.quit();
    BOOST_REQUIRE(f);
    BOOST_TEST((f->cause == Cause::starttls_unavailable));
    BOOST_TEST((f->stage == Stage::starttls));
    BOOST_TEST(f->detail.find("does not offer STARTTLS") != std::string::npos);
    auto lines = srv.lines();
    BOOST_TEST(lines.size() == 2u);
    BOOST_TEST(lines.at(1) == "QUIT");
    BOOST_TEST(decide(*f).exit_status == kExTempFail);
}

BOOST_AUTO_TEST_CASE(starttls_refused) {
    ScriptServer srv([&](Peer& p) {
        p.send("220 ready\r\n");
        p.line();
        p.send(kEhloPlain);
        p.line();
        p.send("454 4.7.0 TLS not available due to temporary reason\r\n");
        serve_quit(p);
    });
    SmtpClient c(settings(srv.port()), in(30));
    auto f = c.open({kUser, kToken});
    c.quit();
    BOOST_REQUIRE(f);
    BOOST_TEST((f->cause == Cause::server_reply));
    BOOST_TEST((f->stage == Stage::starttls));
    BOOST_TEST(f->reply->code == 454);
    auto lines = srv.lines();
    BOOST_TEST(!any_starts(lines, "AUTH"));
    BOOST_TEST(!any_starts(lines, "MAIL"));
}

BOOST_AUTO_TEST_CASE(starttls_injection_is_refused) {
    ScriptServer srv([&](Peer& p) {
        p.send("220 ready\r\n");
        p.line();
        p.send(kEhloPlain);
        p.line();
        p.send("220 2.0.0 go ahead\r\n250 injected\r\n");
        serve_quit(p);
    });
    SmtpClient c(settings(srv.port()), in(30));
    auto f = c.open({kUser, kToken});
    c.quit();
    BOOST_REQUIRE(f);
    BOOST_TEST((f->cause == Cause::protocol));
    BOOST_TEST(f->detail.find("after its reply to STARTTLS") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(certificate_problems) {
    struct Row {
        std::string cert, key, host, expect;
    };
    const Row rows[] = {
        {"wronghost.crt", "wronghost.key", "localhost", "certificate verify failed"},
        {"rogue.crt", "rogue.key", "localhost",
         "certificate verify failed: unable to get local issuer certificate"},
        // the name the client connects to must be in the certificate
        {"server.crt", "server.key", "127.0.0.1", ""},
    };
    for (const Row& row : rows) {
        BOOST_TEST_CONTEXT(row.cert << " as " << row.host) {
            ScriptServer srv([&](Peer& p) {
                p.send("220 ready\r\n");
                p.line();
                p.send(kEhloPlain);
                p.line();
                p.send("220 go\r\n");
                if (!p.starttls((ca_dir() / row.cert).string(), (ca_dir() / row.key).string()))
                    return;
                p.line();
                p.send(kEhloTls);
                if (p.line() == "AUTH XOAUTH2") p.send("535 5.7.3 Authentication unsuccessful\r\n");
                serve_quit(p);
            });
            SmtpClient c(settings(srv.port(), row.host), in(30));
            auto f = c.open({kUser, kToken});
            c.quit();
            BOOST_REQUIRE(f);
            BOOST_TEST_MESSAGE(f->detail);
            if (row.expect.empty()) {
                BOOST_TEST((f->stage == Stage::auth));  // TLS passed
            } else {
                BOOST_TEST((f->cause == Cause::tls));
                BOOST_TEST((f->stage == Stage::tls_handshake));
                BOOST_TEST(f->detail.find(row.expect) != std::string::npos, f->detail);
                BOOST_TEST(decide(*f).dsn() == "4.7.5");
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(tls_1_1_is_refused) {
    ScriptServer srv([&](Peer& p) {
        p.send("220 ready\r\n");
        p.line();
        p.send(kEhloPlain);
        p.line();
        p.send("220 go\r\n");
        p.starttls((ca_dir() / "server.crt").string(), (ca_dir() / "server.key").string(),
                   TLS1_1_VERSION);
    });
    SmtpClient c(settings(srv.port()), in(30));
    auto f = c.open({kUser, kToken});
    BOOST_REQUIRE(f);
    BOOST_TEST_MESSAGE(f->detail);
    BOOST_TEST((f->cause == Cause::tls));
    BOOST_TEST(f->detail.find("TLS handshake failed") != std::string::npos, f->detail);
}

BOOST_AUTO_TEST_CASE(xoauth2_error_challenge_then_535) {
    ScriptServer srv([&](Peer& p) {
        p.send("220 ready\r\n");
        p.line();
        p.send(kEhloPlain);
        p.line();
        p.send("220 go\r\n");
        p.starttls((ca_dir() / "server.crt").string(), (ca_dir() / "server.key").string());
        p.line();
        p.send(kEhloTls);
        p.line();
        p.send("334 \r\n");
        p.line();
        p.send("334 " +
               base64_encode(
                   R"({"status":"401","schemes":"bearer","scope":"https://mail.google.com/"})") +
               "\r\n");
        if (p.line() != "") return;
        p.send(
            "535 5.7.3 Authentication unsuccessful "
            "[SN4PR0501CA0049.namprd05.prod.outlook.com]\r\n");
        serve_quit(p);
    });
    SmtpClient c(settings(srv.port()), in(30));
    auto f = c.open({kUser, kToken});
    c.quit();
    BOOST_REQUIRE(f);
    BOOST_TEST((f->cause == Cause::server_reply));
    BOOST_TEST((f->stage == Stage::auth));
    BOOST_TEST(f->reply->code == 535);
    BOOST_TEST(f->reply->enhanced == "5.7.3");
    BOOST_TEST(srv.lines().back() == "QUIT");
}

BOOST_AUTO_TEST_CASE(recipient_refused_with_pipelined_data_closes_without_dot) {
    bool saw_eof_in_data = false;
    ScriptServer srv([&](Peer& p) {
        if (!serve_to_auth(p)) return;
        for (int i = 0; i < 4; ++i)
            p.line();
        p.send(
            "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n550 5.1.10 "
            "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup\r\n354 "
            "Start mail input\r\n");
        saw_eof_in_data = !p.data().has_value();
    });
    SmtpClient c(settings(srv.port()), in(30));
    BOOST_REQUIRE(!c.open({kUser, kToken}));
    StringSource src({"Subject: x\r\n\r\nbody\r\n"});
    SendResult r =
        c.send(Envelope{"a@contoso.com", {"bob@example.org", "nobody@example.org"}, false, 0}, src);
    c.quit();
    srv.join();
    BOOST_TEST(!r.delivered());
    BOOST_TEST(saw_eof_in_data);
    BOOST_REQUIRE(r.failures.size() == 1u);
    BOOST_TEST(r.failures[0].recipient == "nobody@example.org");
    BOOST_TEST(r.failures[0].others_accepted);
    BOOST_TEST(r.recipients.size() == 2u);
    BOOST_TEST(decide(r.failures[0]).exit_status == kExTempFail);
}

BOOST_AUTO_TEST_CASE(all_recipients_refused_is_permanent) {
    ScriptServer srv([&](Peer& p) {
        if (!serve_to_auth(p)) return;
        for (int i = 0; i < 3; ++i)
            p.line();
        p.send(
            "250 2.1.0 Sender OK\r\n550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found\r\n554 "
            "5.5.1 Error: no valid recipients\r\n");
        serve_quit(p);
    });
    SmtpClient c(settings(srv.port()), in(30));
    BOOST_REQUIRE(!c.open({kUser, kToken}));
    StringSource src({"x\r\n"});
    SendResult r = c.send(Envelope{"a@contoso.com", {"nobody@example.org"}, false, 0}, src);
    c.quit();
    BOOST_REQUIRE(r.failures.size() == 1u);
    BOOST_TEST(!r.failures[0].others_accepted);
    Outcome o = decide(r.failures[0]);
    BOOST_TEST(o.exit_status == kExNoUser);
    BOOST_TEST(o.dsn() == "5.1.10");
    BOOST_TEST(srv.lines().back() == "QUIT");
}

BOOST_AUTO_TEST_CASE(timeout_waiting_for_rcpt_reply) {
    ScriptServer srv([&](Peer& p) {
        if (!serve_to_auth(p)) return;
        for (int i = 0; i < 3; ++i)
            p.line();
        p.send("250 2.1.0 Sender OK\r\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    });
    SmtpSettings s = settings(srv.port());
    s.command_timeout = 1;
    SmtpClient c(s, in(30));
    BOOST_REQUIRE(!c.open({kUser, kToken}));
    StringSource src({"x\r\n"});
    SendResult r = c.send(Envelope{"a@contoso.com", {"b@example.org"}, false, 0}, src);
    BOOST_REQUIRE(r.failures.size() == 1u);
    BOOST_TEST_MESSAGE(decide(r.failures[0]).status_line);
    BOOST_TEST((r.failures[0].cause == Cause::timeout));
    BOOST_TEST((r.failures[0].stage == Stage::rcpt_to));
    BOOST_TEST(
        r.failures[0].detail.rfind("timed out after 1 s waiting for reply to RCPT TO", 0) == 0u,
        r.failures[0].detail);
}

BOOST_AUTO_TEST_CASE(deadline_bounds_everything) {
    ScriptServer srv([&](Peer& p) {
        p.send("220 ready\r\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    });
    SmtpSettings s = settings(srv.port());
    s.command_timeout = 60;
    SmtpClient c(s, in(1));
    auto f = c.open({kUser, kToken});
    BOOST_REQUIRE(f);
    BOOST_TEST_MESSAGE(decide(*f).status_line);
    BOOST_TEST((f->cause == Cause::deadline));
    BOOST_TEST((f->stage == Stage::ehlo));
    BOOST_TEST(decide(*f).dsn() == "4.4.7");
}

BOOST_AUTO_TEST_CASE(lost_connection_after_end_of_data) {
    ScriptServer srv([&](Peer& p) {
        if (!serve_to_auth(p)) return;
        for (int i = 0; i < 3; ++i)
            p.line();
        p.send("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 go\r\n");
        p.data();
        p.close();
    });
    SmtpClient c(settings(srv.port()), in(30));
    BOOST_REQUIRE(!c.open({kUser, kToken}));
    StringSource src({"x\r\n"});
    SendResult r = c.send(Envelope{"a@contoso.com", {"b@example.org"}, false, 0}, src);
    c.quit();
    BOOST_REQUIRE(r.failures.size() == 1u);
    BOOST_TEST_MESSAGE(decide(r.failures[0]).status_line);
    BOOST_TEST((r.failures[0].cause == Cause::lost_connection));
    BOOST_TEST((r.failures[0].stage == Stage::end_of_data));
    BOOST_TEST(r.failures[0].detail.find("lost connection with localhost[127.0.0.1]") == 0u,
               r.failures[0].detail);
    BOOST_TEST(r.failures[0].detail.find("end of DATA") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(greeting_refused_and_connect_refused) {
    {
        ScriptServer srv([&](Peer& p) {
            p.send("432 4.3.2 Concurrent connections limit exceeded\r\n");
            serve_quit(p);
        });
        SmtpClient c(settings(srv.port()), in(30));
        auto f = c.open({kUser, kToken});
        c.quit();
        BOOST_REQUIRE(f);
        BOOST_TEST((f->stage == Stage::greeting));
        BOOST_TEST(decide(*f).dsn() == "4.3.2");
    }
    int port;
    {
        ScriptServer srv([](Peer&) {});
        port = srv.port();
        ::close(::socket(AF_INET, SOCK_STREAM, 0));
    }  // closed: nothing listens there now
    SmtpClient c(settings(port, "127.0.0.1"), in(30));
    auto f = c.open({kUser, kToken});
    BOOST_REQUIRE(f);
    BOOST_TEST_MESSAGE(decide(*f).status_line);
    BOOST_TEST((f->cause == Cause::connect));
    BOOST_TEST(f->detail.find("Connection refused") != std::string::npos, f->detail);
}

BOOST_AUTO_TEST_CASE(smtputf8_when_an_address_needs_it) {
    std::string mail_line;
    ScriptServer srv([&](Peer& p) {
        if (!serve_to_auth(p)) return;
        auto l = p.line();
        mail_line = l.value_or("");
        p.line();
        p.line();
        p.send("250 ok\r\n250 ok\r\n354 go\r\n");
        p.data();
        p.send("250 2.0.0 OK\r\n");
        serve_quit(p);
    });
    SmtpClient c(settings(srv.port()), in(30));
    BOOST_REQUIRE(!c.open({kUser, kToken}));
    StringSource src({"x\r\n"});
    SendResult r = c.send(Envelope{"a@contoso.com", {"j\xc3\xb6rg@example.org"}, false, 0}, src);
    c.quit();
    srv.join();
    BOOST_TEST(r.delivered());
    BOOST_TEST(mail_line == "MAIL FROM:<a@contoso.com> SMTPUTF8");
}

BOOST_AUTO_TEST_SUITE_END()

// --- smtp_session: connect .. AUTH with one forced token refresh after a 535 ---

namespace {

const std::string kToken2 = "tok.en-second_0123456789abcdefghijklmnopqrstuvwxyz";

std::string blob_of(const std::string& token) {
    return base64_encode("user=" + kUser + "\x01" + "auth=Bearer " + token + "\x01\x01");
}

// Accepts connections one after another; `auth_replies[i]` answers the AUTH of
// connection i (the token it carried is recorded). Stops after the replies.
class AuthServer {
  public:
    explicit AuthServer(std::vector<std::string> auth_replies)
        : srv_([this, replies = std::move(auth_replies)](Peer& first) {
              serve(first, replies[0]);
              for (std::size_t i = 1; i < replies.size(); ++i) {
                  int fd = ::accept(lfd(), nullptr, nullptr);
                  if (fd < 0) return;
                  Peer p(fd);
                  serve(p, replies[i]);
              }
          }) {}
    int port() const { return srv_.port(); }
    // The XOAUTH2 tokens received, per connection (after the server is done).
    std::vector<std::string> tokens() {
        srv_.join();
        std::lock_guard lk(mu_);
        return tokens_;
    }

  private:
    int lfd() const { return srv_.listen_fd(); }
    void serve(Peer& p, const std::string& auth_reply) {
        p.send("220 smtp.office365.test Microsoft ESMTP MAIL Service ready\r\n");
        if (!p.line()) return;
        p.send(kEhloPlain);
        if (p.line() != "STARTTLS") return;
        p.send("220 2.0.0 SMTP server ready\r\n");
        if (!p.starttls((ca_dir() / "server.crt").string(), (ca_dir() / "server.key").string()))
            return;
        if (!p.line()) return;
        p.send(kEhloTls);
        if (p.line() != "AUTH XOAUTH2") return;
        p.send("334 \r\n");
        std::string blob = p.line().value_or("");
        {
            std::lock_guard lk(mu_);
            tokens_.push_back(blob == blob_of(kToken)    ? "token1"
                              : blob == blob_of(kToken2) ? "token2"
                                                         : "other");
        }
        p.send(auth_reply + "\r\n");
        serve_quit(p);
    }

    std::mutex mu_;
    std::vector<std::string> tokens_;
    ScriptServer srv_;  // last: its thread uses the members above
};

// Records every call; refresh() returns kToken2 or throws `refresh_error`.
class RecordingTokens : public TokenProvider {
  public:
    int gets = 0, refreshes = 0, rejects = 0;
    std::string refreshed_rejected, rejected_token, reject_reason;
    TokenDeadline refresh_deadline;
    std::optional<Error> refresh_error;

    AccessToken get(const Account&, TokenDeadline) override {
        ++gets;
        return AccessToken{kToken, 0};
    }
    AccessToken refresh(const Account&, const std::string& rejected,
                        TokenDeadline deadline) override {
        ++refreshes;
        refreshed_rejected = rejected;
        refresh_deadline = deadline;
        if (refresh_error) throw *refresh_error;
        return AccessToken{kToken2, 0};
    }
    void reject(const Account&, const std::string& token,
                const std::string& reason) noexcept override {
        ++rejects;
        rejected_token = token;
        reject_reason = reason;
    }
};

Account test_account() {
    Account a;
    a.name = "noreply";
    a.mailbox = kUser;
    return a;
}

const char* k535 = "535 5.7.3 Authentication unsuccessful [SN4PR0501CA0049.namprd05.prod]";
const char* k235 = "235 2.7.0 Authentication successful";

}  // namespace

BOOST_AUTO_TEST_SUITE(smtp_session)

BOOST_AUTO_TEST_CASE(revoked_token_one_refresh_one_new_connection) {
    AuthServer srv({k535, k235});
    RecordingTokens tokens;
    auto deadline = in(30);
    int refreshing = 0;
    SessionEvents ev;
    ev.refreshing = [&](const SmtpReply& r) {
        ++refreshing;
        BOOST_TEST(r.code == 535);
    };
    SmtpSession s = open_smtp_session(settings(srv.port()), deadline, test_account(),
                                      AccessToken{kToken, 0}, tokens, ev);
    BOOST_TEST(!s.failure);
    s.client->quit();
    BOOST_TEST((srv.tokens() == std::vector<std::string>{"token1", "token2"}));
    BOOST_TEST(s.token_refreshed);
    BOOST_TEST(s.token.value == kToken2);
    BOOST_TEST(refreshing == 1);
    BOOST_TEST(tokens.gets == 0);
    BOOST_TEST(tokens.refreshes == 1);
    BOOST_TEST(tokens.refreshed_rejected == kToken);
    BOOST_TEST((tokens.refresh_deadline == deadline));  // the caller's deadline is passed on
    BOOST_TEST(tokens.rejects == 0);
}

BOOST_AUTO_TEST_CASE(persistent_535_defers_and_the_cache_is_told) {
    AuthServer srv({k535, k535});
    RecordingTokens tokens;
    SmtpSession s = open_smtp_session(settings(srv.port()), in(30), test_account(),
                                      AccessToken{kToken, 0}, tokens);
    s.client->quit();
    BOOST_TEST(srv.tokens().size() == 2u);  // one retry only
    BOOST_REQUIRE(s.failure);
    BOOST_TEST(s.failure->after_refresh);
    BOOST_TEST(tokens.refreshes == 1);
    BOOST_TEST(tokens.rejects == 1);
    BOOST_TEST(tokens.rejected_token == kToken2);  // the fresh token, not the first
    BOOST_TEST(tokens.reject_reason.find("535 5.7.3") != std::string::npos, tokens.reject_reason);
    BOOST_TEST(tokens.reject_reason.find(kToken2) == std::string::npos);
    Outcome o = decide(*s.failure);
    BOOST_TEST(o.dsn() == "4.7.3");
    BOOST_TEST(o.status_line.find("again after a forced token refresh") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(smtp_auth_disabled_is_not_retried) {
    AuthServer srv(
        {"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
         "disabled for the Tenant."});
    RecordingTokens tokens;
    SmtpSession s = open_smtp_session(settings(srv.port()), in(30), test_account(),
                                      AccessToken{kToken, 0}, tokens);
    s.client->quit();
    BOOST_TEST(srv.tokens().size() == 1u);
    BOOST_REQUIRE(s.failure);
    BOOST_TEST(!s.token_refreshed);
    BOOST_TEST(tokens.refreshes == 0);
    BOOST_TEST(tokens.rejects == 0);
    BOOST_TEST(decide(*s.failure).dsn() == "4.7.139");
}

BOOST_AUTO_TEST_CASE(no_new_token_is_a_token_failure_of_its_class) {
    AuthServer srv({k535});
    RecordingTokens tokens;
    tokens.refresh_error = Error(ErrorClass::configuration, "invalid_client: AADSTS7000215");
    SmtpSession s = open_smtp_session(settings(srv.port()), in(30), test_account(),
                                      AccessToken{kToken, 0}, tokens);
    BOOST_TEST(srv.tokens().size() == 1u);
    BOOST_REQUIRE(s.failure);
    BOOST_TEST((s.failure->cause == Cause::token));
    BOOST_TEST((s.failure->error_class == ErrorClass::configuration));
    BOOST_TEST(s.failure->detail.find("535 5.7.3") != std::string::npos, s.failure->detail);
    BOOST_TEST(s.failure->detail.find("AADSTS7000215") != std::string::npos);
    BOOST_TEST(tokens.rejects == 0);
    BOOST_TEST(decide(*s.failure).dsn() == "4.7.0");
}

BOOST_AUTO_TEST_SUITE_END()
