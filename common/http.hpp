// http: HTTPS form POST over libcurl, for the Entra ID token endpoint.
//
// Contract:
// - post_form() sends one POST with an application/x-www-form-urlencoded body
//   (every name and value URL-encoded by form_encode()) and returns the answer
//   whatever its HTTP status; it does not follow redirects.
// - TLS: HTTPS only, TLS 1.2 or newer, peer and host verification always on;
//   ca_file empty = the system trust store. Proxies come from the usual
//   environment variables (https_proxy, no_proxy, ...), as libcurl does.
// - Failures without an HTTP answer (DNS, connect, TLS, timeouts, an answer
//   larger than 1 MB) throw OAuthError(temporary, http_status 0) naming the host
//   and the cause, e.g. "token request to login.microsoftonline.com: timed out
//   after 30 s connecting to login.microsoftonline.com". A bad trust store file or
//   a non-https URL throws OAuthError(configuration).
// - Nothing here logs; callers register secret form values with add_secret().
// - libcurl is loaded at the first call (curl_api.hpp); if it cannot be
//   loaded, OAuthError(temporary) "cannot load libcurl.so.4: <dlerror>".
// Thread-safe: every call uses its own handle; loading and curl_global_init run once.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace o365 {

using FormFields = std::vector<std::pair<std::string, std::string>>;

// "name=value&name=value" with every name and value URL-encoded
// (curl_easy_escape: everything but ALPHA / DIGIT / "-" / "." / "_" / "~" is %XX,
// so a space is %20 and "+" is %2B).
std::string form_encode(const FormFields& fields);

struct HttpRequest {
    std::string url;
    FormFields form;
    int connect_timeout = 30;  // seconds for TCP connect + TLS handshake
    int timeout = 30;          // seconds for the whole request
    std::string ca_file;       // empty: system trust store
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
