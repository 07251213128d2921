#include "tls.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "error.hpp"

namespace o365 {

namespace {

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// The system trust store. Debian's ca-certificates keeps the same CAs twice:
// a bundle file and a hashed directory (update-ca-certificates). A file lookup
// parses every certificate of the bundle at once (~140: about 235 M instructions
// with OpenSSL 3.0, ten times a whole delivery); the directory lookup reads only
// the issuers a verification needs. With SSL_CERT_FILE set, OpenSSL's default
// paths (file and directory), as an administrator would expect.
bool load_system_store(SSL_CTX* ctx) {
    if (std::getenv(X509_get_default_cert_file_env()) != nullptr)
        return SSL_CTX_set_default_verify_paths(ctx) == 1;
    return SSL_CTX_set_default_verify_dir(ctx) == 1;  // SSL_CERT_DIR or OPENSSLDIR/certs
}

[[noreturn]] void fail(const std::string& what) {
    throw Error(ErrorClass::temporary, what);
}

}  // namespace

std::string openssl_errors() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        const char* reason = ERR_reason_error_string(e);
        std::string r;
        if (reason) {
            r = reason;
        } else {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            r = buf;
        }
        if (!out.empty()) out += "; ";
        out += r;
    }
    return out;
}

void openssl_init_short_lived() {
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
}

void SslCtxFree::operator()(SSL_CTX* p) const noexcept {
    SSL_CTX_free(p);
}
void SslFree::operator()(SSL* p) const noexcept {
    SSL_free(p);
}

TlsContext TlsContext::client(const std::string& ca_file) {
    ERR_clear_error();
    SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
    if (!raw) fail("cannot create TLS context: " + openssl_errors());
    TlsContext ctx(raw);
    if (SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION) != 1)
        fail("cannot set TLS 1.2 as minimum version: " + openssl_errors());
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(raw, ca_file.c_str(), nullptr) != 1)
            fail("cannot load CA file " + ca_file + ": " + openssl_errors());
    } else if (!load_system_store(raw)) {
        fail("cannot load the system trust store: " + openssl_errors());
    }
    return ctx;
}

TlsStream::TlsStream(const TlsContext& ctx, int fd, const std::string& host) : host_(host) {
    ERR_clear_error();
    ssl_.reset(SSL_new(ctx.get()));
    if (!ssl_) fail("cannot create TLS session: " + openssl_errors());
    if (SSL_set_fd(ssl_.get(), fd) != 1) fail("cannot attach TLS to socket: " + openssl_errors());
    // Host name verification: SSL_set1_host treats an IP literal as an IP address.
    if (SSL_set1_host(ssl_.get(), host.c_str()) != 1)
        fail("cannot set expected host name " + host + ": " + openssl_errors());
    if (!is_ip_literal(host) && SSL_set_tlsext_host_name(ssl_.get(), host.c_str()) != 1)
        fail("cannot set SNI " + host + ": " + openssl_errors());
    SSL_set_connect_state(ssl_.get());
}

TlsStream::Want TlsStream::check(int ret, const char* what) {
    int err = SSL_get_error(ssl_.get(), ret);
    switch (err) {
        case SSL_ERROR_WANT_READ:
            return Want::read;
        case SSL_ERROR_WANT_WRITE:
            return Want::write;
        default:
            break;
    }
    int saved_errno = errno;
    std::string reason;
    long vr = SSL_get_verify_result(ssl_.get());
    if (vr != X509_V_OK) {
        reason = std::string("certificate verify failed: ") + X509_verify_cert_error_string(vr);
        if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
            reason += " (expected " + host_ + ")";
        ERR_clear_error();
    } else {
        reason = openssl_errors();
        if (reason.empty()) {
            if (err == SSL_ERROR_SYSCALL)
                reason = saved_errno ? std::strerror(saved_errno) : "connection closed by peer";
            else if (err == SSL_ERROR_ZERO_RETURN)
                reason = "connection closed by peer";
            else
                reason = "TLS error " + std::to_string(err);
        }
    }
    fail(std::string(what) + ": " + reason);
}

TlsStream::Want TlsStream::handshake() {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_.get());
    if (r == 1) return Want::none;
    Want w = check(r, "TLS handshake failed");
    return w;
}

TlsStream::Want TlsStream::read(char* buf, std::size_t n, std::size_t& got) {
    got = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read_ex(ssl_.get(), buf, n, &got);
    if (r == 1) return Want::none;
    int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_ZERO_RETURN) {
        got = 0;
        return Want::none;
    }
    // EOF without close_notify: OpenSSL 3 reports SSL_R_UNEXPECTED_EOF_WHILE_READING,
    // older versions SSL_ERROR_SYSCALL with errno 0. Both mean the peer closed.
    bool unexpected_eof = (err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) ==
                                                       SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
                          (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0);
    if (unexpected_eof) {
        ERR_clear_error();
        got = 0;
        return Want::none;
    }
    return check(r, "TLS read failed");
}

TlsStream::Want TlsStream::write(const char* buf, std::size_t n, std::size_t& written) {
    written = 0;
    ERR_clear_error();
    int r = SSL_write_ex(ssl_.get(), buf, n, &written);
    if (r == 1) return Want::none;
    return check(r, "TLS write failed");
}

void TlsStream::shutdown() noexcept {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
}

std::string TlsStream::description() const {
    const char* v = SSL_get_version(ssl_.get());
    const char* c = SSL_get_cipher_name(ssl_.get());
    return std::string(v ? v : "?") + " with cipher " + (c ? c : "?");
}

}  // namespace o365
