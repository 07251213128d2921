// http: HTTPS requests over libcurl. It knows neither Entra nor Graph.
//
// Contract:
// - post_form() sends one POST with an application/x-www-form-urlencoded body
//   (every name and value URL-encoded by form_encode()) and returns the answer
//   whatever its HTTP status; it does not follow redirects.
// - TLS: HTTPS only, TLS 1.2 or newer, peer and host verification always on;
//   ca_file empty = the system trust store. Proxies come from the usual
//   environment variables (https_proxy, no_proxy, ...), as libcurl does.
// - Timeouts: connect_timeout and timeout (seconds), both bounded by the time
//   left until `deadline` when one is given (millisecond precision); a request
//   whose deadline has already passed is not started.
// - Failures without an HTTP answer (DNS, connect, TLS, timeouts, an answer
//   larger than 1 MB) throw HttpError(temporary) with a cause, naming the host:
//   what() is "request to login.microsoftonline.com: timed out after 30 s
//   connecting to login.microsoftonline.com"; host() and detail() give the two
//   parts so that a caller can say "token request to HOST: DETAIL". A bad trust
//   store file or a non-https URL throws HttpError(configuration).
// - Nothing here logs; callers register secret form values with add_secret().
// - libcurl is loaded at the first call (curl_api.hpp); if it cannot be
//   loaded, HttpError(temporary, library) "cannot load libcurl.so.4: <dlerror>".
// Thread-safe: every call uses its own handle; loading and curl_global_init run once.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "deadline.hpp"
#include "error.hpp"

namespace o365 {

// A failure without an HTTP answer.
class HttpError : public Error {
  public:
    enum class Cause { resolve, connect, tls, timeout, too_large, config, library };

    HttpError(ErrorClass c, Cause cause, std::string host, std::string detail)
        : Error(c, host.empty() ? detail : "request to " + host + ": " + detail),
          cause_(cause),
          host_(std::move(host)),
          detail_(std::move(detail)) {}
    Cause cause() const noexcept { return cause_; }
    const std::string& host() const noexcept { return host_; }      // "" when not known yet
    const std::string& detail() const noexcept { return detail_; }  // the cause in words

  private:
    Cause cause_;
    std::string host_;
    std::string detail_;
};

using FormFields = std::vector<std::pair<std::string, std::string>>;

// "name=value&name=value" with every name and value URL-encoded
// (curl_easy_escape: everything but ALPHA / DIGIT / "-" / "." / "_" / "~" is %XX,
// so a space is %20 and "+" is %2B).
std::string form_encode(const FormFields& fields);

struct HttpRequest {
    std::string url;
    FormFields form;
    int connect_timeout = 30;          // seconds for TCP connect + TLS handshake
    int timeout = 30;                  // seconds for the whole request
    std::string ca_file;               // empty: system trust store
    std::optional<Deadline> deadline;  // bounds both timeouts when set
};

struct HttpResponse {
    long status = 0;
    std::string body;
    std::string content_type;
    std::string retry_after_header;  // as received, "" when absent
    int retry_after = 0;             // seconds (delta or HTTP date), 0 when absent/unparsable
};

HttpResponse post_form(const HttpRequest& request);

// Seconds from a Retry-After value: delta-seconds or an HTTP date (relative to
// `now`). 0 when empty, unparsable or in the past; capped at one day.
int parse_retry_after(const std::string& value, long long now);

}  // namespace o365
