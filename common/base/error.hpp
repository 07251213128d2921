// error: the project's one error type. Every failure carries a class that says
// what may be done about it:
//   temporary     - may succeed later (network, timeouts, 4xx, throttling, an
//                   account problem an administrator can fix): defer, never bounce;
//   permanent     - retrying cannot help (this message or recipient is refused);
//   configuration - the local configuration is wrong (bad file, bad key).
// The message keeps the peer's own text (SMTP reply, AADSTS description).
// Thread-safe: values only.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace o365 {

enum class ErrorClass { temporary, permanent, configuration };

std::string_view to_string(ErrorClass c) noexcept;

class Error : public std::runtime_error {
  public:
    Error(ErrorClass c, const std::string& message) : std::runtime_error(message), class_(c) {}
    ErrorClass error_class() const noexcept { return class_; }

  private:
    ErrorClass class_;
};

// A configuration problem; the message names file, line and key where known.
class ConfigError : public Error {
  public:
    explicit ConfigError(const std::string& message) : Error(ErrorClass::configuration, message) {}
};

}  // namespace o365
