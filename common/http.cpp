#include "http.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <exception>
#include <memory>
#include <mutex>

#include "curl_api.hpp"

namespace o365 {

namespace {

using Cause = HttpError::Cause;

[[noreturn]] void fail(Cause cause, const std::string& detail, const std::string& host = {},
                       ErrorClass c = ErrorClass::temporary) {
    throw HttpError(c, cause, host, detail);
}

// libcurl, loaded at first use (curl_api.hpp); its failure is an HttpError
// like every other failure without an HTTP answer.
const CurlApi& curl() {
    try {
        return curl_api();
    } catch (const HttpError&) {
        throw;
    } catch (const Error& e) {
        fail(Cause::library, e.what(), {}, e.error_class());
    }
}

// The deleters below run only on handles libcurl made, so curl() cannot throw there.
struct CurlDeleter {
    void operator()(CURL* c) const noexcept { curl().easy_cleanup(c); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
    void operator()(curl_slist* l) const noexcept { curl().slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

struct CurlUrlDeleter {
    void operator()(CURLU* u) const noexcept { curl().url_cleanup(u); }
};

struct CurlStrDeleter {
    void operator()(char* s) const noexcept { curl().free(s); }
};
using CurlStr = std::unique_ptr<char, CurlStrDeleter>;

CurlPtr new_handle() {
    CurlPtr h(curl().easy_init());
    if (!h) fail(Cause::library, "cannot create a libcurl handle");
    return h;
}

std::string escape(CURL* h, const std::string& s) {
    CurlStr e(curl().easy_escape(h, s.data(), static_cast<int>(s.size())));
    if (!e) fail(Cause::library, "libcurl could not URL-encode a value");
    return std::string(e.get());
}

// The host of an URL, for messages; the URL itself when it cannot be parsed.
std::string host_of(const std::string& url) {
    std::unique_ptr<CURLU, CurlUrlDeleter> u(curl().url());
    if (!u || curl().url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return url;
    char* host = nullptr;
    if (curl().url_get(u.get(), CURLUPART_HOST, &host, 0) != CURLUE_OK || !host) return url;
    CurlStr h(host);
    return std::string(h.get());
}

struct Sink {
    std::size_t max = 1 << 20;
    std::string body;
    std::string content_type;
    std::string retry_after;
    bool too_big = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* s = static_cast<Sink*>(user);
    size_t len = size * n;
    if (s->body.size() + len > s->max) {
        s->too_big = true;
        return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    s->body.append(data, len);
    return len;
}

std::string trim(std::string v) {
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back())))
        v.pop_back();
    std::size_t i = 0;
    while (i < v.size() && std::isspace(static_cast<unsigned char>(v[i])))
        ++i;
    return v.substr(i);
}

bool header_is(const std::string& line, std::string_view name) {
    if (line.size() <= name.size() || line[name.size()] != ':') return false;
    for (std::size_t i = 0; i < name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) !=
            std::tolower(static_cast<unsigned char>(name[i])))
            return false;
    return true;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
    auto* s = static_cast<Sink*>(user);
    size_t len = size * n;
    std::string line(data, len);
    if (line.rfind("HTTP/", 0) == 0) {
        // A new response (after a proxy CONNECT or 100 Continue): forget the old headers.
        s->content_type.clear();
        s->retry_after.clear();
    } else if (header_is(line, "retry-after")) {
        s->retry_after = trim(line.substr(12));
    } else if (header_is(line, "content-type")) {
        s->content_type = trim(line.substr(13));
    }
    return len;
}

Cause cause_of(CURLcode rc) {
    switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return Cause::resolve;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
            return Cause::tls;
        case CURLE_OPERATION_TIMEDOUT:
            return Cause::timeout;
        default:
            return Cause::connect;
    }
}

// The streamed body: the caller's reader, its exception kept for after the transfer.
struct Source {
    const BodyReader* reader = nullptr;
    std::uint64_t left = 0;
    std::exception_ptr error;
    bool finished = false;  // the reader reached the end of the body
};

size_t on_read(char* buf, size_t size, size_t n, void* user) {
    auto* s = static_cast<Source*>(user);
    std::size_t max = size * n;
    if (s->left < max) max = static_cast<std::size_t>(s->left);
    if (max == 0) {
        s->finished = true;
        return 0;
    }
    try {
        std::size_t got = (*s->reader)(buf, max);
        if (got == 0) throw Error(ErrorClass::temporary, "the request body ended early");
        s->left -= got;
        if (s->left == 0) s->finished = true;
        return got;
    } catch (...) {
        s->error = std::current_exception();
        return CURL_READFUNC_ABORT;
    }
}

SlistPtr header_list(const std::vector<std::string>& lines, const std::string& host) {
    curl_slist* list = nullptr;
    for (const auto& hd : lines) {
        curl_slist* l = curl().slist_append(list, hd.c_str());
        if (!l) {
            curl().slist_free_all(list);
            fail(Cause::library, "out of memory building HTTP headers", host);
        }
        list = l;
    }
    return SlistPtr(list);
}

template <typename T>
void set(CURL* h, CURLoption opt, T value) {
    CURLcode rc = curl().easy_setopt(h, opt, value);
    if (rc != CURLE_OK)
        fail(Cause::library, std::string("libcurl option failed: ") + curl().easy_strerror(rc));
}

}  // namespace

std::string form_encode(const FormFields& fields) {
    CurlPtr h = new_handle();
    std::string out;
    for (const auto& [name, value] : fields) {
        if (!out.empty()) out += '&';
        out += escape(h.get(), name);
        out += '=';
        out += escape(h.get(), value);
    }
    return out;
}

int parse_retry_after(const std::string& value, long long now) {
    std::string v = trim(value);
    if (v.empty()) return 0;
    long long secs = -1;
    bool digits = true;
    for (char c : v)
        if (!std::isdigit(static_cast<unsigned char>(c))) digits = false;
    if (digits) {
        secs = v.size() > 9 ? 86400 : std::stoll(v);
    } else {
        time_t t = curl().getdate(v.c_str(), nullptr);
        if (t == -1) return 0;
        secs = static_cast<long long>(t) - now;
    }
    if (secs <= 0) return 0;
    if (secs > 86400) secs = 86400;
    return static_cast<int>(secs);
}

const char* method_name(HttpMethod m) noexcept {
    switch (m) {
        case HttpMethod::get:
            return "GET";
        case HttpMethod::post:
            return "POST";
        case HttpMethod::patch:
            return "PATCH";
        case HttpMethod::del:
            return "DELETE";
    }
    return "?";
}

namespace {

// The method and the body: a string, a streamed reader, or none.
void set_method_and_body(CURL* h, const HttpRequest& req, Source& source) {
    const bool has_body = req.reader || !req.body.empty() || req.method == HttpMethod::post ||
                          req.method == HttpMethod::patch;
    if (req.method == HttpMethod::get) {
        set(h, CURLOPT_HTTPGET, 1L);
    } else if (has_body) {
        set(h, CURLOPT_POST, 1L);  // POST semantics (Content-Length), PATCH by custom request
        if (req.reader) {
            source.reader = &req.reader;
            source.left = req.body_length;
            set(h, CURLOPT_READFUNCTION, on_read);
            set(h, CURLOPT_READDATA, &source);
            set(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body_length));
        } else {
            set(h, CURLOPT_POSTFIELDS, req.body.c_str());
            set(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
        }
    }
    if (req.method == HttpMethod::patch || req.method == HttpMethod::del)
        set(h, CURLOPT_CUSTOMREQUEST, method_name(req.method));
}

// Both timeouts bounded by the deadline (milliseconds: a second more is too much).
// Returns whether the deadline (rather than the own timeout) bounds the request.
bool set_timeouts(CURL* h, const HttpRequest& req, const std::string& host) {
    const auto connect_ms = bounded(std::chrono::seconds(req.connect_timeout), req.deadline);
    const auto total_ms = bounded(std::chrono::seconds(req.timeout), req.deadline);
    if (total_ms.count() <= 0) fail(Cause::timeout, "deadline reached before the request", host);
    set(h, CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(std::max<long long>(connect_ms.count(), 1)));
    set(h, CURLOPT_TIMEOUT_MS, static_cast<long>(total_ms.count()));
    return req.deadline && total_ms < std::chrono::seconds(req.timeout);
}

struct Peer {
    std::string ip;
    long port = 0;
};

Peer peer_of(CURL* h) {
    Peer p;
    char* ip = nullptr;
    if (curl().easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip) p.ip = ip;
    curl().easy_getinfo(h, CURLINFO_PRIMARY_PORT, &p.port);
    return p;
}

// Whether the request line, the headers and the whole body went out.
bool whole_request_sent(CURL* h, const HttpRequest& req, const Source& source) {
    long header_bytes = 0;
    curl().easy_getinfo(h, CURLINFO_REQUEST_SIZE, &header_bytes);
    if (header_bytes <= 0) return false;
    if (req.reader) return source.finished;
    curl_off_t up = 0;
    curl().easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
    return static_cast<std::uint64_t>(up) >= req.body.size();
}

// The HttpError for a failed transfer.
HttpError transfer_error(CURL* h, CURLcode rc, const char* errbuf, const HttpRequest& req,
                         const std::string& host, bool by_deadline, const Sink& sink,
                         const Source& source) {
    std::string cause = errbuf[0] ? errbuf : curl().easy_strerror(rc);
    while (!cause.empty() && (cause.back() == '\n' || cause.back() == '\r'))
        cause.pop_back();
    const bool sent = whole_request_sent(h, req, source);
    Peer peer = peer_of(h);
    auto error = [&](Cause c, const std::string& detail, ErrorClass cls = ErrorClass::temporary) {
        HttpError e(cls, c, host, detail);
        e.with_progress(sent, peer.ip, peer.port);
        return e;
    };
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        curl_off_t connected = 0, total_us = 0;
        curl().easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &connected);
        curl().easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total_us);
        long secs = std::lround(static_cast<double>(total_us) / 1e6);
        return error(
            Cause::timeout,
            (by_deadline ? "deadline reached after " : "timed out after ") + std::to_string(secs) +
                " s " +
                (connected == 0 ? "connecting to " + host : "waiting for the answer of " + host));
    }
    if (rc == CURLE_WRITE_ERROR && sink.too_big)
        return error(Cause::too_large,
                     "answer larger than " + std::to_string(req.max_response) + " bytes");
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        return error(Cause::config, cause + " (the URL must be an https:// URL)",
                     ErrorClass::configuration);
    if (rc == CURLE_SSL_CACERT_BADFILE)
        return error(Cause::config, cause + " (check the ca_file " + req.ca_file + ")",
                     ErrorClass::configuration);
    if (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
        rc == CURLE_PARTIAL_FILE)
        return error(Cause::lost, "lost connection with " + host + ": " + cause);
    return error(cause_of(rc), cause);
}

}  // namespace

HttpResponse http_request(const HttpRequest& req) {
    CurlPtr hp = new_handle();
    CURL* h = hp.get();
    const std::string host = host_of(req.url);
    Sink sink;
    sink.max = req.max_response;
    Source source;
    char errbuf[CURL_ERROR_SIZE] = {0};

    std::vector<std::string> lines = req.headers;
    lines.push_back("Expect:");  // no 100-continue round trip
    SlistPtr headers = header_list(lines, host);

    set(h, CURLOPT_URL, req.url.c_str());
    set(h, CURLOPT_PROTOCOLS_STR, "https");
    set(h, CURLOPT_FOLLOWLOCATION, 0L);
    set(h, CURLOPT_NOSIGNAL, 1L);
    set(h, CURLOPT_ERRORBUFFER, errbuf);
    set_method_and_body(h, req, source);
    set(h, CURLOPT_HTTPHEADER, headers.get());
    set(h, CURLOPT_USERAGENT, "o365relay/0.1");
    if (!req.proxy.empty()) set(h, CURLOPT_PROXY, req.proxy.c_str());
    const bool by_deadline = set_timeouts(h, req, host);
    set(h, CURLOPT_SSL_VERIFYPEER, 1L);
    set(h, CURLOPT_SSL_VERIFYHOST, 2L);  // 2: the name must match (1 means the same since 7.66)
    set(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    if (!req.ca_file.empty()) set(h, CURLOPT_CAINFO, req.ca_file.c_str());
    set(h, CURLOPT_WRITEFUNCTION, on_body);
    set(h, CURLOPT_WRITEDATA, &sink);
    set(h, CURLOPT_HEADERFUNCTION, on_header);
    set(h, CURLOPT_HEADERDATA, &sink);

    CURLcode rc = curl().easy_perform(h);
    if (source.error) std::rethrow_exception(source.error);
    if (rc != CURLE_OK) throw transfer_error(h, rc, errbuf, req, host, by_deadline, sink, source);

    HttpResponse resp;
    curl().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    Peer peer = peer_of(h);
    resp.peer_ip = std::move(peer.ip);
    resp.peer_port = peer.port;
    resp.body = std::move(sink.body);
    resp.content_type = std::move(sink.content_type);
    resp.retry_after_header = std::move(sink.retry_after);
    resp.retry_after =
        parse_retry_after(resp.retry_after_header, static_cast<long long>(std::time(nullptr)));
    return resp;
}

HttpResponse post_form(const HttpRequest& form_request) {
    HttpRequest req = form_request;
    req.method = HttpMethod::post;
    req.headers = {"Accept: application/json", "Content-Type: application/x-www-form-urlencoded"};
    req.body = form_encode(form_request.form);
    req.reader = nullptr;
    return http_request(req);
}

}  // namespace o365
