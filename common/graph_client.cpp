#include "graph_client.hpp"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "graph_envelope.hpp"
#include "graph_error.hpp"
#include "graph_limits.hpp"
#include "graph_mime.hpp"
#include "graph_throttle.hpp"
#include "http.hpp"
#include "log.hpp"
#include "token_audience.hpp"

namespace o365 {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// Stops the delivery with a failure.
struct Stop {
    Failure failure;
};

[[noreturn]] void stop(Cause c, Stage s, const std::string& detail, std::string peer = {}) {
    throw Stop{local_failure(c, s, detail, std::move(peer))};
}

// Percent-encodes a path segment (everything but unreserved characters and '@').
std::string segment(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || c == '@';
        if (keep) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// One Graph request, as the steps describe it.
struct Call {
    Stage stage;
    HttpMethod method;
    std::string path;  // after <endpoint>/v1.0/users/<mailbox>
    long expected;     // 202, 201, 200, 204
    std::string json;  // a JSON body; empty: the MIME body or none
    bool mime = false;
};

class GraphSender {
  public:
    GraphSender(const GraphDelivery& d, GraphMessage m, GraphResult& r)
        : d_(d),
          msg_(m),
          r_(r),
          token_account_(account_for_audience(d.account, d.settings, Audience::graph)),
          throttle_(d.state_dir, d.account.name),
          host_(endpoint_host(d.settings.endpoint)) {
        std::string e = d.settings.endpoint;
        while (!e.empty() && e.back() == '/')
            e.pop_back();
        base_ = e + "/v1.0/users/" + segment(d.account.mailbox);
    }

    void run() {
        // 1. The message: size and header recipients.
        MimeScan scan = read_message();
        // 2. The route.
        GraphRoute route = plan_route(d_.recipients, scan.recipients);
        // 3. The token.
        get_token();
        // 4. The requests.
        auto t0 = Clock::now();
        if (route.send_mail) {
            send_mail(scan.size);
        } else {
            r_.draft_route = true;
            send_draft(route, scan.size);
        }
        r_.transmit_seconds = seconds_since(t0);
        r_.delivered = true;
    }

  private:
    // 1.
    MimeScan read_message() {
        MimeScan scan = scan_mime(msg_.wire);
        msg_.rewind();
        const long long size = static_cast<long long>(scan.size);
        auto limit = method_size_limit(d_.account);
        if (limit && size > *limit)
            stop(Cause::message_too_big, Stage::none, size_limit_refusal(d_.account, size));
        return scan;
    }

    // 3.
    void get_token() {
        auto t0 = Clock::now();
        try {
            token_ = d_.tokens.get(token_account_, d_.deadline).value;
            add_secret(token_);
        } catch (const Error& e) {
            Failure f = local_failure(
                Cause::token, Stage::none,
                "no Microsoft Graph access token for account " + d_.account.name + ": " + e.what());
            f.error_class = e.error_class();
            throw Stop{f};
        }
        r_.token_seconds += seconds_since(t0);
    }

    // 4a. The one request of the sendMail route.
    void send_mail(std::uint64_t size) {
        perform(Call{Stage::graph_sendmail, HttpMethod::post, "/sendMail", 202, "", true}, size);
    }

    // 4b. Draft, recipients, send; the draft deleted after a failure.
    void send_draft(const GraphRoute& route, std::uint64_t size) {
        HttpResponse created =
            perform(Call{Stage::graph_create, HttpMethod::post, "/messages", 201, "", true}, size);
        std::string id = draft_id(created);
        try {
            perform(Call{Stage::graph_patch, HttpMethod::patch, "/messages/" + segment(id), 200,
                         recipients_json(route)},
                    0);
            perform(Call{Stage::graph_send, HttpMethod::post, "/messages/" + segment(id) + "/send",
                         202, ""},
                    0);
        } catch (const Stop&) {
            delete_draft(id);
            throw;
        }
    }

    std::string draft_id(const HttpResponse& created) {
        auto j = nlohmann::json::parse(created.body, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.contains("id") && j["id"].is_string() &&
            !j["id"].get<std::string>().empty())
            return j["id"].get<std::string>();
        stop(Cause::protocol, Stage::graph_create,
             "Microsoft Graph created the draft but its answer names no id (draft left in the "
             "mailbox)",
             r_.peer);
    }

    static nlohmann::json address_list(const std::vector<std::string>& addrs) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& a : addrs)
            list.push_back({{"emailAddress", {{"address", a}}}});
        return list;
    }

    static std::string recipients_json(const GraphRoute& route) {
        nlohmann::json j = {{"toRecipients", address_list(route.to)},
                            {"ccRecipients", address_list(route.cc)},
                            {"bccRecipients", address_list(route.bcc)}};
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }

    void delete_draft(const std::string& id) {
        try {
            perform(Call{Stage::graph_send, HttpMethod::del, "/messages/" + segment(id), 204, ""},
                    0);
            note("deleted the unsent draft");
        } catch (const Stop& s) {
            note("could not delete the unsent draft (it stays in the Drafts folder of " +
                 d_.account.mailbox +
                 "): " + (s.failure.detail.empty() ? s.failure.graph_code : s.failure.detail));
        }
    }

    // One request: throttle, slot, the request, one token refresh after a 401.
    HttpResponse perform(const Call& call, std::uint64_t size) {
        check_throttle(call.stage);
        HttpResponse resp = request_in_slot(call, size);
        if (resp.status == 401 && !refreshed_) {
            refresh_token(call.stage);
            resp = request_in_slot(call, size);
            if (resp.status == 401) d_.tokens.reject(token_account_, token_, "HTTP 401 from Graph");
        }
        r_.http_status = resp.status;
        r_.stage = call.stage;
        if (resp.status == call.expected || (call.method == HttpMethod::del && resp.status == 404))
            return resp;
        if (resp.status == 429) throttle_.hold_off(resp.retry_after > 0 ? resp.retry_after : 60);
        GraphError e = parse_graph_error(resp.body);
        Failure f;
        f.cause = Cause::graph_reply;
        f.stage = call.stage;
        f.peer = r_.peer;
        f.http_status = resp.status;
        f.graph_code = e.code;
        f.graph_message = e.message;
        f.after_refresh = resp.status == 401 && refreshed_;
        f.others_accepted = d_.recipients.size() > 1;
        throw Stop{f};
    }

    void check_throttle(Stage stage) {
        auto until = throttle_.blocked_until();
        if (!until) return;
        std::time_t t = static_cast<std::time_t>(*until);
        char when[32] = {0};
        std::tm tm{};
        gmtime_r(&t, &tm);
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        stop(Cause::throttled, stage,
             "Microsoft Graph throttles account " + d_.account.name + " (429 Retry-After): no " +
                 "request before " + when + "; nothing sent");
    }

    void refresh_token(Stage stage) {
        refreshed_ = true;
        r_.token_refreshed = true;
        note("Microsoft Graph refused the token (HTTP 401); refreshing it once and retrying");
        auto t0 = Clock::now();
        try {
            token_ = d_.tokens.refresh(token_account_, token_, d_.deadline).value;
            add_secret(token_);
        } catch (const Error& e) {
            Failure f = local_failure(Cause::token, stage,
                                      "no new Microsoft Graph access token for account " +
                                          d_.account.name + ": " + e.what(),
                                      r_.peer);
            f.error_class = e.error_class();
            throw Stop{f};
        }
        r_.token_seconds += seconds_since(t0);
    }

    HttpResponse request_in_slot(const Call& call, std::uint64_t size) {
        std::optional<GraphSlot> slot;
        try {
            slot.emplace(acquire_slot(d_.state_dir, d_.account.name, d_.deadline));
        } catch (const DeadlineError& e) {
            stop(Cause::deadline, call.stage, e.what(), r_.peer);
        } catch (const Error& e) {
            stop(Cause::internal, call.stage, e.what(), r_.peer);
        }
        HttpRequest req = make_request(call);
        std::optional<Base64Body> body;
        if (call.mime) {
            msg_.rewind();
            body.emplace(msg_.wire, size);
            req.reader = [&body](char* buf, std::size_t max) { return body->read(buf, max); };
            req.body_length = body->length();
        }
        try {
            HttpResponse resp = http_request(req);
            note_peer(resp.peer_ip, resp.peer_port);
            return resp;
        } catch (const HttpError& e) {
            if (!e.peer_ip().empty()) note_peer(e.peer_ip(), e.peer_port());
            throw Stop{http_failure(e, call)};
        } catch (const Error& e) {  // reading the spool
            stop(Cause::message_input, call.stage, e.what(), r_.peer);
        }
    }

    HttpRequest make_request(const Call& call) const {
        HttpRequest req;
        req.method = call.method;
        req.url = base_ + call.path;
        req.headers = {"Authorization: Bearer " + token_, "Accept: application/json"};
        if (call.mime) {
            req.headers.push_back("Content-Type: text/plain");
        } else if (!call.json.empty()) {
            req.headers.push_back("Content-Type: application/json");
            req.body = call.json;
        }
        req.ca_file = d_.settings.ca_file;
        req.timeout = d_.settings.http_timeout;
        req.connect_timeout = std::min(30, d_.settings.http_timeout);
        req.deadline = d_.deadline;
        req.max_response = 1 << 20;
        return req;
    }

    void note_peer(const std::string& ip, long port) {
        r_.peer = host_ + "[" + ip + "]:" + std::to_string(port);
    }

    Failure http_failure(const HttpError& e, const Call& call) const {
        using HC = HttpError::Cause;
        std::string what = std::string(stage_name(call.stage));
        std::string where = r_.peer.empty() ? host_ : r_.peer;
        Cause c = Cause::connect;
        std::string detail;
        switch (e.cause()) {
            case HC::resolve:
                c = Cause::resolve;
                break;
            case HC::connect:
                c = Cause::connect;
                break;
            case HC::tls:
                c = Cause::tls;
                break;
            case HC::timeout:
                c = e.detail().rfind("deadline", 0) == 0 ? Cause::deadline : Cause::timeout;
                break;
            case HC::lost:
                c = Cause::lost_connection;
                break;
            case HC::too_large:
                c = Cause::protocol;
                break;
            case HC::config:
                c = Cause::config;
                break;
            case HC::library:
                c = Cause::internal;
                break;
        }
        if (c == Cause::lost_connection || c == Cause::timeout || c == Cause::deadline) {
            detail =
                (c == Cause::lost_connection ? "lost connection with " + where
                                             : e.detail() + " (" + where + ")") +
                (e.request_sent() ? " after the whole request was sent to Microsoft Graph (" +
                                        what + "); the message may have been sent"
                                  : " while sending the request to Microsoft Graph (" + what + ")");
        } else {
            detail = "Microsoft Graph request (" + what + ") to " + e.host() + ": " + e.detail();
        }
        Failure f = local_failure(c, call.stage, detail, r_.peer);
        f.error_class = e.error_class();
        return f;
    }

    void note(const std::string& text) const {
        if (d_.note) d_.note("account " + d_.account.name + ": " + text);
    }

    const GraphDelivery& d_;
    GraphMessage msg_;
    GraphResult& r_;
    Account token_account_;
    GraphThrottle throttle_;
    std::string host_;
    std::string base_;
    std::string token_;
    bool refreshed_ = false;
};

}  // namespace

std::string endpoint_host(const std::string& endpoint) {
    std::string h = endpoint;
    auto scheme = h.find("://");
    if (scheme != std::string::npos) h = h.substr(scheme + 3);
    h = h.substr(0, h.find('/'));
    if (!h.empty() && h[0] == '[') return h.substr(0, h.find(']') + 1);
    return h.substr(0, h.find(':'));
}

GraphResult send_by_graph(const GraphDelivery& delivery, GraphMessage message) {
    GraphResult r;
    try {
        GraphSender(delivery, message, r).run();
    } catch (const Stop& s) {
        r.failure = s.failure;
        if (r.failure->peer.empty()) r.failure->peer = r.peer;
    } catch (const std::exception& e) {
        r.failure =
            local_failure(Cause::internal, r.stage,
                          std::string("internal error (Microsoft Graph): ") + e.what(), r.peer);
    }
    return r;
}

}  // namespace o365
