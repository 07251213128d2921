// tls: OpenSSL RAII for the SMTP client's STARTTLS (client side only).
//
// Contract:
// - TlsContext::client(ca_file): an SSL_CTX with TLS 1.2 as the minimum
//   version and peer verification ALWAYS on, trusting `ca_file` when given,
//   else the system trust store: the hashed directory (SSL_CERT_DIR, default
//   /usr/lib/ssl/certs = /etc/ssl/certs, kept by update-ca-certificates), read
//   lazily; with SSL_CERT_FILE set, OpenSSL's default file and directory.
//   There is no way to turn verification off.
// - TlsStream wraps a connected, non-blocking socket: sets SNI (DNS names only,
//   RFC 6066) and the expected host name (SSL_set1_host: a DNS name is checked
//   against the certificate's names, an IP literal against its IP addresses).
//   handshake(), read() and write() never block: they return Want::read /
//   Want::write when the caller must poll() the socket and call again.
// - Failures throw o365::Error (temporary: an administrator or the peer can fix
//   them) with OpenSSL's reason text, e.g. "certificate verify failed: unable to
//   get local issuer certificate" or "TLS handshake failed: unsupported protocol".
//   A CA file that cannot be loaded is also temporary ("cannot load CA file ...")
//   so that a local mistake defers mail instead of bouncing it.
// - The socket is not owned: the caller closes it after the TlsStream is gone.
// Thread-safety: a TlsContext may be shared between threads after creation;
// a TlsStream belongs to one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace o365 {

// The reason text of the errors on OpenSSL's error queue of this thread (most
// recent last, joined by "; "), and clears the queue. "" when empty.
std::string openssl_errors();

// For a short-lived process (the transport): call first in main(), before any
// other OpenSSL call. OpenSSL then skips its atexit clean-up, which frees every
// table it built (about 1.4 M instructions, 5% of a delivery); the kernel frees
// the memory at exit anyway. Nothing else changes: the configuration is loaded
// and the TLS settings above apply as before. Called later, it has no effect.
void openssl_init_short_lived();

struct SslCtxFree {
    void operator()(SSL_CTX* p) const noexcept;
};
struct SslFree {
    void operator()(SSL* p) const noexcept;
};

class TlsContext {
  public:
    static TlsContext client(const std::string& ca_file);
    SSL_CTX* get() const { return ctx_.get(); }

  private:
    explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
    std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
};

class TlsStream {
  public:
    enum class Want { none, read, write };

    TlsStream(const TlsContext& ctx, int fd, const std::string& host);

    // Want::none when the handshake is complete (certificate and name verified).
    Want handshake();
    // Reads up to n bytes into buf; got = bytes read (0 with Want::none means
    // the peer closed the connection).
    Want read(char* buf, std::size_t n, std::size_t& got);
    // Writes up to n bytes; written = bytes taken.
    Want write(const char* buf, std::size_t n, std::size_t& written);
    // Sends close_notify once, without waiting for the peer's.
    void shutdown() noexcept;

    // "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384", after the handshake.
    std::string description() const;

  private:
    Want check(int ret, const char* what);

    std::unique_ptr<SSL, SslFree> ssl_;
    std::string host_;
};

}  // namespace o365
