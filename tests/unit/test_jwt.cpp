// jwt (client assertion): a key and certificate are made with the openssl CLI
// in a temporary directory; the assertion's signature is verified with OpenSSL
// (PS256 and RS256), the header thumbprints are compared with digests computed
// by the openssl CLI, and the claims are checked.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "base64.hpp"
#include "error.hpp"
#include "jwt.hpp"
#include "log.hpp"

using namespace o365;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string run(const std::string& cmd) {
    FILE* p = ::popen(cmd.c_str(), "r");
    BOOST_REQUIRE(p);
    std::string out;
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
        out.append(buf.data(), n);
    int rc = ::pclose(p);
    BOOST_REQUIRE_MESSAGE(rc == 0, "command failed: " << cmd);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
        out.pop_back();
    return out;
}

struct Keys {
    fs::path dir;
    std::string crt, key;
    Keys() {
        const char* t = std::getenv("TMPDIR");
        std::string base = std::string(t && *t ? t : "/tmp") + "/o365-jwt-XXXXXX";
        std::vector<char> b(base.begin(), base.end());
        b.push_back('\0');
        BOOST_REQUIRE(::mkdtemp(b.data()));
        dir = b.data();
        crt = (dir / "app.crt").string();
        key = (dir / "app.key").string();
        run("cd " + dir.string() +
            " && umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -keyout app.key -out "
            "app.crt -days 2 -subj /CN=jwt-test 2>/dev/null && chmod 644 app.crt");
    }
    ~Keys() { fs::remove_all(dir); }
    std::string gen(const std::string& name, const std::string& algo_opts) {
        std::string p = (dir / name).string();
        run("cd " + dir.string() + " && umask 077 && openssl genpkey " + algo_opts + " -out " +
            name + " 2>/dev/null");
        return p;
    }
};

std::string independent_thumbprint(const std::string& crt, const std::string& alg) {
    return run("openssl x509 -in " + crt + " -outform DER | openssl dgst -" + alg +
               " -binary | base64 -w0 | tr '+/' '-_' | tr -d '='");
}

struct Parts {
    std::string header_b64, claims_b64, sig_b64;
    json header, claims;
    std::string sig;
};

Parts split(const std::string& jwt) {
    Parts p;
    auto d1 = jwt.find('.');
    auto d2 = jwt.find('.', d1 + 1);
    BOOST_REQUIRE(d1 != std::string::npos && d2 != std::string::npos);
    BOOST_REQUIRE(jwt.find('.', d2 + 1) == std::string::npos);
    p.header_b64 = jwt.substr(0, d1);
    p.claims_b64 = jwt.substr(d1 + 1, d2 - d1 - 1);
    p.sig_b64 = jwt.substr(d2 + 1);
    p.header = json::parse(base64url_decode(p.header_b64));
    p.claims = json::parse(base64url_decode(p.claims_b64));
    p.sig = base64url_decode(p.sig_b64);
    return p;
}

// Verifies with the certificate's public key, as Entra would.
bool verify(const std::string& crt, const Parts& p, bool pss) {
    FILE* f = std::fopen(crt.c_str(), "r");
    BOOST_REQUIRE(f);
    X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    BOOST_REQUIRE(x);
    EVP_PKEY* pub = X509_get_pubkey(x);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    bool ok = EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), nullptr, pub) == 1;
    if (pss) {
        ok = ok && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1;
    } else {
        ok = ok && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    }
    std::string input = p.header_b64 + "." + p.claims_b64;
    ok = ok &&
         EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(p.sig.data()), p.sig.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pub);
    X509_free(x);
    return ok;
}

const std::string kAud =
    "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
const std::string kClient = "11111111-2222-3333-4444-555555555555";

}  // namespace

BOOST_AUTO_TEST_SUITE(jwt)

BOOST_AUTO_TEST_CASE(ps256_header_claims_and_signature) {
    Keys k;
    auto cert = ClientCertificate::load(k.crt, k.key);
    const std::int64_t now = std::time(nullptr);
    std::string jwt = make_client_assertion(cert, kClient, kAud, AssertionAlg::ps256, now);
    Parts p = split(jwt);
    BOOST_TEST(p.header.size() == 3u);
    BOOST_TEST(p.header.at("alg") == "PS256");
    BOOST_TEST(p.header.at("typ") == "JWT");
    BOOST_TEST(p.header.at("x5t#S256").get<std::string>() ==
               independent_thumbprint(k.crt, "sha256"));
    BOOST_TEST(!p.header.contains("x5t"));
    BOOST_TEST(p.claims.at("aud") == kAud);
    BOOST_TEST(p.claims.at("iss") == kClient);
    BOOST_TEST(p.claims.at("sub") == kClient);
    BOOST_TEST(p.claims.at("nbf").get<std::int64_t>() == now);
    BOOST_TEST(p.claims.at("iat").get<std::int64_t>() == now);
    BOOST_TEST(p.claims.at("exp").get<std::int64_t>() == now + 300);
    BOOST_TEST(p.claims.at("jti").get<std::string>().size() == 36u);
    BOOST_TEST(p.sig.size() == 256u);  // RSA-2048
    BOOST_TEST(verify(k.crt, p, true));
    BOOST_TEST(!verify(k.crt, p, false));  // it is PSS, not PKCS#1 v1.5
    // A changed claim breaks the signature.
    Parts t = p;
    json c = p.claims;
    c["sub"] = "someone-else";
    t.claims_b64 = base64url_encode(c.dump());
    BOOST_TEST(!verify(k.crt, t, true));
    // The assertion is registered as a secret: it never reaches a log.
    BOOST_TEST(redact("x " + jwt + " y") == "x [redacted] y");
}

BOOST_AUTO_TEST_CASE(rs256_uses_x5t_sha1) {
    Keys k;
    auto cert = ClientCertificate::load(k.crt, k.key);
    const std::int64_t now = 1700000000;
    std::string jwt = make_client_assertion(cert, kClient, kAud, AssertionAlg::rs256, now, 120);
    Parts p = split(jwt);
    BOOST_TEST(p.header.at("alg") == "RS256");
    BOOST_TEST(p.header.at("typ") == "JWT");
    BOOST_TEST(p.header.at("x5t").get<std::string>() == independent_thumbprint(k.crt, "sha1"));
    BOOST_TEST(!p.header.contains("x5t#S256"));
    BOOST_TEST(p.claims.at("exp").get<std::int64_t>() == now + 120);
    BOOST_TEST(verify(k.crt, p, false));
    BOOST_TEST(!verify(k.crt, p, true));
}

BOOST_AUTO_TEST_CASE(jti_is_unique) {
    Keys k;
    auto cert = ClientCertificate::load(k.crt, k.key);
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        Parts p = split(make_client_assertion(cert, kClient, kAud, AssertionAlg::ps256, 1));
        seen.insert(p.claims.at("jti").get<std::string>());
    }
    BOOST_TEST(seen.size() == 200u);
}

BOOST_AUTO_TEST_CASE(bad_credentials_are_configuration_errors) {
    Keys k;
    auto expect = [](const std::string& crt, const std::string& key, const std::string& text) {
        try {
            ClientCertificate::load(crt, key);
            BOOST_ERROR("no error for " << text);
        } catch (const ConfigError& e) {
            BOOST_TEST(std::string(e.what()).find(text) != std::string::npos,
                       e.what() << " lacks " << text);
        }
    };
    std::string other = k.gen("other.key", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048");
    expect(k.crt, other, "does not belong to certificate");
    std::string small = k.gen("small.key", "-algorithm RSA -pkeyopt rsa_keygen_bits:1024");
    expect(k.crt, small, "at least 2048");
    std::string ec = k.gen("ec.key", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
    expect(k.crt, ec, "not an RSA key");
    std::string crt_copy = (k.dir / "crt-as-key").string();
    run("cp " + k.crt + " " + crt_copy + " && chmod 600 " + crt_copy);
    expect(k.crt, crt_copy, "no unencrypted PEM private key");  // a certificate is no key
    expect((k.dir / "missing.crt").string(), k.key, "cannot read certificate_file");
    expect(k.key, k.key, "no PEM certificate");
    ::chmod(k.key.c_str(), 0644);
    expect(k.crt, k.key, "chmod 600");
    ::chmod(k.key.c_str(), 0600);
    BOOST_CHECK_NO_THROW(ClientCertificate::load(k.crt, k.key));
}

// A certificate or key file that is a FIFO is refused before anything waits for
// a writer (if the load blocks, the test opens the writer end after 2 s so that
// it fails instead of hanging).
BOOST_AUTO_TEST_CASE(fifo_credentials_refused_promptly) {
    Keys k;
    const std::string fifo = (k.dir / "fifo").string();
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    for (int as_key = 0; as_key < 2; ++as_key) {
        auto f = std::async(std::launch::async, [&] {
            try {
                ClientCertificate::load(as_key ? k.crt : fifo, as_key ? fifo : k.key);
            } catch (const ConfigError& e) {
                return std::string(e.what());
            }
            return std::string();
        });
        if (f.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
            int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // unblock the reader
            f.wait();
            if (w >= 0) ::close(w);
            BOOST_ERROR("loading a FIFO blocked (as_key=" << as_key << ")");
            continue;
        }
        std::string e = f.get();
        BOOST_TEST(e.find(fifo) != std::string::npos, e);
        BOOST_TEST(e.find("not a regular file") != std::string::npos, e);
    }
}

BOOST_AUTO_TEST_SUITE_END()
