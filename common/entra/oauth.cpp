#include "oauth.hpp"

#include <chrono>
#include <ctime>
#include <thread>

#include "http.hpp"
#include "jwt.hpp"
#include "log.hpp"
#include "secret_file.hpp"

namespace o365 {

namespace {

constexpr const char* kDeviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code";
constexpr const char* kJwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

bool has_credential(const Account& a) {
    return a.uses_certificate() || !a.entra.client_secret_file.empty();
}

// Adds client_secret or client_assertion for the account's credential.
// Credential files that cannot be used become OAuthError(configuration).
std::string add_credential(const Account& a, FormFields& form) {
    try {
        if (a.uses_certificate()) {
            auto cert = ClientCertificate::load(a.entra.certificate_file, a.entra.private_key_file);
            form.emplace_back("client_assertion_type", kJwtBearer);
            form.emplace_back("client_assertion",
                              make_client_assertion(cert, a.entra.client_id,
                                                    a.entra.token_endpoint(), a.entra.assertion_alg,
                                                    static_cast<std::int64_t>(std::time(nullptr))));
            return a.entra.assertion_alg == AssertionAlg::ps256 ? "certificate PS256"
                                                                : "certificate RS256";
        }
        std::string secret = read_secret_file(a.entra.client_secret_file);
        add_secret(secret);
        form.emplace_back("client_secret", std::move(secret));
        return "client secret";
    } catch (const OAuthError&) {
        throw;
    } catch (const Error& e) {
        throw OAuthError(e.error_class() == ErrorClass::temporary ? ErrorClass::temporary
                                                                  : ErrorClass::configuration,
                         "account " + a.name + ": " + e.what());
    }
}

// One POST; the HTTP layer's HttpError becomes an OAuthError (http_status 0)
// that says which request failed: "token request to HOST: DETAIL".
HttpResponse post(const Account& a, const std::string& url, FormFields form,
                  const std::string& request, std::optional<Deadline> deadline) {
    HttpRequest req;
    req.url = url;
    req.form = std::move(form);
    req.connect_timeout = a.entra.http_timeout;
    req.timeout = a.entra.http_timeout;
    req.ca_file = a.entra.ca_file;
    req.proxy = a.entra.proxy;
    req.deadline = deadline;
    try {
        return post_form(req);
    } catch (const HttpError& e) {
        std::string msg = e.host().empty() ? request + ": " + e.detail()
                                           : request + " to " + e.host() + ": " + e.detail();
        if (e.cause() == HttpError::Cause::config) msg += " (check [entra] authority and ca_file)";
        throw OAuthError(e.error_class(), msg);
    }
}

std::string host_part(const std::string& url) {
    auto p = url.find("://");
    if (p == std::string::npos) return url;
    auto e = url.find('/', p + 3);
    return url.substr(p + 3, e == std::string::npos ? std::string::npos : e - p - 3);
}

TokenGrant token_request(const Account& a, FormFields form, const std::string& what,
                         std::optional<Deadline> deadline = std::nullopt) {
    const std::string url = a.entra.token_endpoint();
    if (log_enabled(LogLevel::debug))
        log_debug("account " + a.name + ": token request (" + what + ") to " + host_part(url));
    HttpResponse r = post(a, url, std::move(form), "token request", deadline);
    TokenGrant g = read_token_answer(r.status, r.body, r.retry_after, a.name);
    if (log_enabled(LogLevel::debug))
        log_debug("account " + a.name + ": token obtained (" + what + "), expires in " +
                  std::to_string(g.expires_in) + " s" +
                  (g.refresh_token.empty() ? "" : ", with refresh token"));
    return g;
}

}  // namespace

void EntraClient::real_sleep(int seconds) {
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
}

TokenGrant EntraClient::acquire(const Account& a, const std::string& refresh_token) {
    return acquire_request(a, refresh_token, std::nullopt);
}

TokenGrant EntraClient::acquire_until(const Account& a, const std::string& refresh_token,
                                      Deadline deadline) {
    return acquire_request(a, refresh_token, deadline);
}

TokenGrant EntraClient::acquire_request(const Account& a, const std::string& refresh_token,
                                        std::optional<Deadline> deadline) {
    FormFields form;
    if (!refresh_token.empty()) {
        add_secret(refresh_token);
        form = {{"grant_type", "refresh_token"},
                {"client_id", a.entra.client_id},
                {"refresh_token", refresh_token},
                {"scope", a.entra.scope}};
        std::string what = "refresh_token";
        if (has_credential(a)) what += ", " + add_credential(a, form);
        TokenGrant g = token_request(a, std::move(form), what, deadline);
        if (g.refresh_token.empty()) g.refresh_token = refresh_token;
        return g;
    }
    if (a.flow == Flow::delegated)
        throw OAuthError(ErrorClass::configuration,
                         "account " + a.name +
                             " is delegated and has no refresh token (hint: run `o365relayctl "
                             "login " +
                             a.name + "`)");
    if (!has_credential(a))
        throw OAuthError(ErrorClass::configuration,
                         "account " + a.name +
                             " has no credential: set certificate_file + private_key_file or "
                             "client_secret_file");
    form = {{"grant_type", "client_credentials"},
            {"client_id", a.entra.client_id},
            {"scope", a.entra.scope}};
    std::string what = "client_credentials, " + add_credential(a, form);
    return token_request(a, std::move(form), what, deadline);
}

DeviceCode EntraClient::start_device_code(const Account& a) {
    const std::string url = a.entra.devicecode_endpoint();
    if (log_enabled(LogLevel::debug))
        log_debug("account " + a.name + ": device code request to " + host_part(url));
    HttpResponse r = post(a, url, {{"client_id", a.entra.client_id}, {"scope", a.entra.scope}},
                          "device code request", std::nullopt);
    return read_device_code_answer(r.status, r.body, r.retry_after, a.name);
}

TokenGrant EntraClient::poll_device_code(const Account& a, const DeviceCode& code,
                                         const Sleep& sleep) {
    add_secret(code.device_code);
    int interval = code.interval > 0 ? code.interval : 5;
    long long waited = 0;
    for (;;) {
        if (waited >= code.expires_in)
            throw OAuthError(ErrorClass::permanent,
                             "expired_token: the device code expired after " +
                                 std::to_string(code.expires_in) +
                                 " s before the sign-in was completed (hint: run `o365relayctl "
                                 "login " +
                                 a.name + "` again)",
                             "expired_token");
        sleep(interval);
        waited += interval;
        FormFields form = {{"grant_type", kDeviceCodeGrant},
                           {"client_id", a.entra.client_id},
                           {"device_code", code.device_code}};
        std::string what = "device_code";
        if (has_credential(a)) what += ", " + add_credential(a, form);
        try {
            return token_request(a, std::move(form), what);
        } catch (const OAuthError& e) {
            if (e.oauth_error() == "authorization_pending") continue;
            if (e.oauth_error() == "slow_down") {
                interval += 5;
                continue;
            }
            throw;
        }
    }
}

}  // namespace o365
