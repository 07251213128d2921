// http: HTTPS requests over libcurl. It knows neither Entra nor Graph.
//
// Contract:
// - http_request() sends one request (GET, POST, PATCH, DELETE) with the
//   given extra headers and a body given as a string, or streamed through a
//   read callback with a known length (Content-Length; nothing is held in
//   memory), and returns the answer whatever its HTTP status; it does not
//   follow redirects. "Expect: 100-continue" is never sent.
// - post_form() is the thin wrapper for an application/x-www-form-urlencoded
//   POST (every name and value URL-encoded by form_encode()).
// - TLS: HTTPS only, TLS 1.2 or newer, peer and host verification always on;
//   ca_file empty = the system trust store. Proxy: `proxy` when set, else the
//   usual environment variables (https_proxy, no_proxy, ...), as libcurl does.
// - Timeouts: connect_timeout and timeout (seconds), both bounded by the time
//   left until `deadline` when one is given (millisecond precision); a request
//   whose deadline has already passed is not started.
// - Failures without an HTTP answer (DNS, connect, TLS, timeouts, a lost
//   connection, an answer larger than max_response bytes) throw
//   HttpError(temporary) with a cause, naming the host: what() is "request to
//   login.microsoftonline.com: timed out after 30 s connecting to
//   login.microsoftonline.com"; host() and detail() give the two parts so that
//   a caller can say "token request to HOST: DETAIL". HttpError also says
//   whether the whole request (headers and body) had been sent
//   (request_sent(): the server may have acted on it) and the peer's address
//   when a connection was made. A bad trust store file or a non-https URL
//   throws HttpError(configuration). An exception thrown by the body reader
//   aborts the request and is rethrown as it is.
// - Every answer carries the peer's address and port (CURLINFO_PRIMARY_IP /
//   PORT) for the log line.
// - Nothing here logs; callers register secrets (form values, bearer tokens)
//   with add_secret().
// - libcurl is loaded at the first call (curl_api.hpp); if it cannot be
//   loaded, HttpError(temporary, library) "cannot load libcurl.so.4: <dlerror>".
// Thread-safe: every call uses its own handle; loading and curl_global_init run once.
#pragma once

#include <cstdint>
#include <functional>
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
    enum class Cause { resolve, connect, tls, timeout, too_large, config, library, lost };

    HttpError(ErrorClass c, Cause cause, std::string host, std::string detail)
        : Error(c, host.empty() ? detail : "request to " + host + ": " + detail),
          cause_(cause),
          host_(std::move(host)),
          detail_(std::move(detail)) {}
    Cause cause() const noexcept { return cause_; }
    const std::string& host() const noexcept { return host_; }      // "" when not known yet
    const std::string& detail() const noexcept { return detail_; }  // the cause in words
    // The whole request (headers and body) had been sent: the server may have acted on it.
    bool request_sent() const noexcept { return request_sent_; }
    const std::string& peer_ip() const noexcept { return peer_ip_; }  // "" when not connected
    long peer_port() const noexcept { return peer_port_; }

    HttpError& with_progress(bool request_sent, std::string peer_ip, long peer_port) {
        request_sent_ = request_sent;
        peer_ip_ = std::move(peer_ip);
        peer_port_ = peer_port;
        return *this;
    }

  private:
    Cause cause_;
    std::string host_;
    std::string detail_;
    bool request_sent_ = false;
    std::string peer_ip_;
    long peer_port_ = 0;
};

using FormFields = std::vector<std::pair<std::string, std::string>>;

// "name=value&name=value" with every name and value URL-encoded
// (curl_easy_escape: everything but ALPHA / DIGIT / "-" / "." / "_" / "~" is %XX,
// so a space is %20 and "+" is %2B).
std::string form_encode(const FormFields& fields);

// Writes up to `max` bytes of the body into `buf`; returns how many (0: the
// end). May throw: the request is aborted and the exception rethrown.
using BodyReader = std::function<std::size_t(char* buf, std::size_t max)>;

enum class HttpMethod { get, post, patch, del };

struct HttpRequest {
    HttpMethod method = HttpMethod::post;
    std::string url;
    std::vector<std::string> headers;  // extra "Name: value" lines
    FormFields form;                   // post_form() only
    // The body: `body`, or when `reader` is set `body_length` bytes from it.
    std::string body;
    BodyReader reader;
    std::uint64_t body_length = 0;
    std::string proxy;                   // empty: the environment's (https_proxy, ...)
    std::size_t max_response = 1 << 20;  // larger answers fail (Cause::too_large)
    int connect_timeout = 30;            // seconds for TCP connect + TLS handshake
    int timeout = 30;                    // seconds for the whole request
    std::string ca_file;                 // empty: system trust store
    std::optional<Deadline> deadline;    // bounds both timeouts when set
};

struct HttpResponse {
    long status = 0;
    std::string body;
    std::string content_type;
    std::string retry_after_header;  // as received, "" when absent
    int retry_after = 0;             // seconds (delta or HTTP date), 0 when absent/unparsable
    std::string peer_ip;             // "52.96.0.1"
    long peer_port = 0;              // 443
};

// "GET", "POST", "PATCH", "DELETE".
const char* method_name(HttpMethod m) noexcept;

HttpResponse http_request(const HttpRequest& request);

// POST of request.form as application/x-www-form-urlencoded (method, headers
// and body of `request` are ignored).
HttpResponse post_form(const HttpRequest& request);

// Seconds from a Retry-After value: delta-seconds or an HTTP date (relative to
// `now`). 0 when empty, unparsable or in the past; capped at one day.
int parse_retry_after(const std::string& value, long long now);

}  // namespace o365
