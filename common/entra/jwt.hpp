// jwt: the client assertion (RFC 7523) with which an application proves to
// Entra ID that it holds its certificate credential.
//
// Contract:
// - ClientCertificate::load() reads the certificate (public, PEM, first one in
//   the file) and the private key (a secret file: read with read_secret_file(),
//   PEM, unencrypted, RSA of at least 2048 bits, matching the certificate).
//   Problems throw ConfigError naming the file and the fix. The key bytes read
//   from the file are wiped after parsing.
// - make_client_assertion() returns header.claims.signature (base64url):
//   header {"alg":"PS256","typ":"JWT","x5t#S256":<b64url SHA-256 of DER cert>}
//   or, for AssertionAlg::rs256, {"alg":"RS256","typ":"JWT","x5t":<b64url SHA-1>};
//   claims aud = token endpoint URL, iss = sub = client id, jti = random UUID,
//   nbf = iat = now, exp = now + lifetime (default 5 min). PS256 is RSASSA-PSS
//   with SHA-256, MGF1-SHA-256 and a 32-byte salt. The result is registered
//   with add_secret(). Signing failures throw Error(configuration).
// Thread-safe: a loaded ClientCertificate is immutable and may be shared.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "config.hpp"

namespace o365 {

class ClientCertificate {
  public:
    static ClientCertificate load(const std::string& certificate_file,
                                  const std::string& private_key_file);

    const std::string& x5t() const { return x5t_; }            // base64url SHA-1 of DER
    const std::string& x5t_s256() const { return x5t_s256_; }  // base64url SHA-256 of DER
    EVP_PKEY* key() const { return key_.get(); }

  private:
    std::shared_ptr<EVP_PKEY> key_;
    std::string x5t_;
    std::string x5t_s256_;
};

std::string make_client_assertion(const ClientCertificate& cert, const std::string& client_id,
                                  const std::string& audience, AssertionAlg alg, std::int64_t now,
                                  int lifetime = 300);

}  // namespace o365
