#include "jwt.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base64.hpp"
#include "error.hpp"
#include "log.hpp"
#include "secret_file.hpp"

namespace o365 {

namespace {

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// The last OpenSSL error as text, and the queue cleared.
std::string ssl_error() {
    unsigned long e = ERR_peek_last_error();
    std::string s;
    if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        s = buf;
    }
    ERR_clear_error();
    return s.empty() ? "unknown OpenSSL error" : s;
}

// Wipes a string's bytes before it is freed.
struct Wipe {
    std::string& s;
    ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
};

int no_passphrase(char*, int, int, void*) {
    return 0;
}

std::string digest(const EVP_MD* md, const unsigned char* data, int len) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data, static_cast<std::size_t>(len), out, &n, md, nullptr) != 1)
        throw Error(ErrorClass::configuration, "certificate digest failed: " + ssl_error());
    return std::string(reinterpret_cast<char*>(out), n);
}

std::string uuid4() {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        throw Error(ErrorClass::temporary, "no random bytes for the assertion: " + ssl_error());
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    char s[37];
    std::snprintf(s, sizeof s,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                  b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                  b[14], b[15]);
    return s;
}

}  // namespace

ClientCertificate ClientCertificate::load(const std::string& certificate_file,
                                          const std::string& private_key_file) {
    ClientCertificate c;

    // Read by us, not by BIO_new_file: a FIFO must be refused, not waited for.
    const std::string cert_pem = read_credential_file(certificate_file, "certificate_file");
    BioPtr cbio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
    if (!cbio) throw ConfigError(certificate_file + ": out of memory reading the certificate");
    X509Ptr x509(PEM_read_bio_X509(cbio.get(), nullptr, no_passphrase, nullptr));
    if (!x509)
        throw ConfigError(certificate_file +
                          ": certificate_file holds no PEM certificate: " + ssl_error());
    int der_len = i2d_X509(x509.get(), nullptr);
    if (der_len <= 0)
        throw ConfigError(certificate_file + ": cannot encode the certificate: " + ssl_error());
    std::string der(static_cast<std::size_t>(der_len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509(x509.get(), &p);
    auto* d = reinterpret_cast<const unsigned char*>(der.data());
    c.x5t_ = base64url_encode(digest(EVP_sha1(), d, der_len));
    c.x5t_s256_ = base64url_encode(digest(EVP_sha256(), d, der_len));

    std::string pem = read_secret_file(private_key_file);
    Wipe wipe{pem};
    BioPtr kbio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!kbio) throw ConfigError(private_key_file + ": out of memory reading the key");
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio.get(), nullptr, no_passphrase, nullptr);
    if (!key)
        throw ConfigError(private_key_file +
                          ": private_key_file holds no unencrypted PEM private key (" +
                          ssl_error() + ")");
    c.key_.reset(key, EVP_PKEY_free);
    if (!EVP_PKEY_is_a(key, "RSA"))
        throw ConfigError(private_key_file +
                          ": private key is not an RSA key (Entra "
                          "certificate credentials need RSA)");
    if (EVP_PKEY_get_bits(key) < 2048)
        throw ConfigError(private_key_file + ": RSA key has " +
                          std::to_string(EVP_PKEY_get_bits(key)) +
                          " bits; Entra needs at least 2048");
    if (X509_check_private_key(x509.get(), key) != 1) {
        ERR_clear_error();
        throw ConfigError(private_key_file + ": private key does not belong to certificate " +
                          certificate_file);
    }
    return c;
}

std::string make_client_assertion(const ClientCertificate& cert, const std::string& client_id,
                                  const std::string& audience, AssertionAlg alg, std::int64_t now,
                                  int lifetime) {
    nlohmann::ordered_json header;
    if (alg == AssertionAlg::ps256) {
        header["alg"] = "PS256";
        header["typ"] = "JWT";
        header["x5t#S256"] = cert.x5t_s256();
    } else {
        header["alg"] = "RS256";
        header["typ"] = "JWT";
        header["x5t"] = cert.x5t();
    }
    nlohmann::ordered_json claims;
    claims["aud"] = audience;
    claims["iss"] = client_id;
    claims["sub"] = client_id;
    claims["jti"] = uuid4();
    claims["nbf"] = now;
    claims["iat"] = now;
    claims["exp"] = now + lifetime;
    std::string input = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());

    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx) throw Error(ErrorClass::temporary, "out of memory signing the assertion");
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, cert.key()) != 1)
        throw Error(ErrorClass::configuration, "cannot sign the assertion: " + ssl_error());
    if (alg == AssertionAlg::ps256) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)
            throw Error(ErrorClass::configuration, "cannot set up PS256: " + ssl_error());
    } else {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
            throw Error(ErrorClass::configuration, "cannot set up RS256: " + ssl_error());
    }
    std::size_t siglen = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(input.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &siglen, in, input.size()) != 1)
        throw Error(ErrorClass::configuration, "cannot sign the assertion: " + ssl_error());
    std::string sig(siglen, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &siglen, in,
                       input.size()) != 1)
        throw Error(ErrorClass::configuration, "cannot sign the assertion: " + ssl_error());
    sig.resize(siglen);
    std::string jwt = input + "." + base64url_encode(sig);
    add_secret(jwt);
    return jwt;
}

}  // namespace o365
