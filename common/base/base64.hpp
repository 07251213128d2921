// base64: RFC 4648 base64 (standard alphabet, padded) and base64url (URL-safe
// alphabet, no padding, as in JWTs), on OpenSSL's EVP_EncodeBlock/DecodeBlock.
//
// Contract: encoders never fail. Decoders are strict: they throw
// Error(permanent) naming the problem for a character outside the alphabet,
// whitespace, a wrong length or misplaced padding. base64url_decode also
// accepts padded input. Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>

namespace o365 {

std::string base64_encode(std::string_view bytes);
std::string base64_decode(std::string_view text);

std::string base64url_encode(std::string_view bytes);
std::string base64url_decode(std::string_view text);

}  // namespace o365
