// Classification of Entra ID answers (oauth_errors.hpp, token_response.hpp,
// aadsts.hpp): table-driven; each row is an HTTP status, a body, a Retry-After,
// the expected error class and substrings the message must (and must not) hold.
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "aadsts.hpp"
#include "log.hpp"
#include "oauth_errors.hpp"
#include "token_response.hpp"

using namespace o365;

namespace {

std::string entra_error(const std::string& error, const std::string& code,
                        const std::string& text) {
    return R"({"error":")" + error + R"(","error_description":"AADSTS)" + code + ": " + text +
           R"(\r\nTrace ID: 0b7a1c4e-1d2f-4a55-9d1e-2f3b4c5d6e00\r\nCorrelation ID: )"
           R"(7d0c5f1e-93a4-4f55-b6f1-0e9a8b7c6d5e\r\nTimestamp: 2025-01-01 10:00:00Z",)"
           R"("error_codes":[)" +
           code +
           R"(],"timestamp":"2025-01-01 10:00:00Z","trace_id":"0b7a1c4e-1d2f-4a55-9d1e-2f3b4c5d6e00",)"
           R"("correlation_id":"7d0c5f1e-93a4-4f55-b6f1-0e9a8b7c6d5e","error_uri":)"
           R"("https://login.microsoftonline.com/error?code=)" +
           code + R"("})";
}

struct Row {
    const char* name;
    long status;
    std::string body;
    int retry_after;
    ErrorClass cls;
    std::vector<std::string> contains;
    std::vector<std::string> absent;
    std::string oauth_error;
    std::string aadsts;
};

const char* kT = "temporary";

std::vector<Row> rows() {
    using C = ErrorClass;
    return {
        {"invalid secret",
         401,
         entra_error("invalid_client", "7000215",
                     "Invalid client secret provided. Ensure the secret being sent in the request "
                     "is the client secret value, not the client secret ID, for a secret added to "
                     "app 'abc'."),
         0,
         C::configuration,
         {"invalid_client: AADSTS7000215: Invalid client secret provided.",
          "hint: the client secret is wrong", "not its Secret ID"},
         {"Trace ID", "Correlation", "\r", "\n", "HTTP"},
         "invalid_client",
         "AADSTS7000215"},
        {"secret expired",
         401,
         entra_error("invalid_client", "7000222",
                     "The provided client secret keys for app 'x' are expired."),
         0,
         C::configuration,
         {"AADSTS7000222", "client secret has expired"},
         {},
         "invalid_client",
         "AADSTS7000222"},
        {"app not found",
         400,
         entra_error("unauthorized_client", "700016",
                     "Application with identifier 'x' was not found in the directory 'y'."),
         0,
         C::configuration,
         {"unauthorized_client: AADSTS700016", "client_id"},
         {},
         "unauthorized_client",
         "AADSTS700016"},
        {"assertion signature",
         401,
         entra_error("invalid_client", "700027", "Client assertion failed signature validation."),
         0,
         C::configuration,
         {"AADSTS700027", "upload certificate_file"},
         {},
         "invalid_client",
         "AADSTS700027"},
        {"invalid scope",
         400,
         entra_error("invalid_scope", "70011",
                     "The provided value for the input parameter 'scope' is not valid."),
         0,
         C::configuration,
         {"invalid_scope: AADSTS70011", "https://outlook.office365.com/.default"},
         {},
         "invalid_scope",
         "AADSTS70011"},
        {"resource principal",
         400,
         entra_error("invalid_resource", "500011",
                     "The resource principal named x was not found in the tenant named y."),
         0,
         C::configuration,
         {"AADSTS500011", "resource principal"},
         {},
         "invalid_resource",
         "AADSTS500011"},
        {"no consent",
         400,
         entra_error("invalid_grant", "65001",
                     "The user or administrator has not consented to use the application."),
         0,
         C::configuration,
         {"AADSTS65001", "admin consent"},
         {},
         "invalid_grant",
         "AADSTS65001"},
        {"refresh expired",
         400,
         entra_error(
             "invalid_grant", "70008",
             "The provided authorization code or refresh token has expired due to inactivity."),
         0,
         C::configuration,
         {"AADSTS70008", "`o365relayctl login shared`"},
         {"ACCOUNT"},
         "invalid_grant",
         "AADSTS70008"},
        {"refresh inactive",
         400,
         entra_error("invalid_grant", "700082", "The refresh token has expired due to inactivity."),
         0,
         C::configuration,
         {"AADSTS700082", "o365relayctl login shared"},
         {},
         "invalid_grant",
         "AADSTS700082"},
        {"revoked",
         400,
         entra_error("invalid_grant", "50173",
                     "The provided grant has expired due to it being revoked."),
         0,
         C::configuration,
         {"AADSTS50173", "revoked", "login shared"},
         {},
         "invalid_grant",
         "AADSTS50173"},
        {"mfa",
         400,
         entra_error("invalid_grant", "50076",
                     "Due to a configuration change made by your administrator, you must use "
                     "multi-factor authentication."),
         0,
         C::configuration,
         {"AADSTS50076", "multi-factor"},
         {},
         "invalid_grant",
         "AADSTS50076"},
        {"conditional access",
         400,
         entra_error("invalid_grant", "53003",
                     "Access has been blocked by Conditional Access policies."),
         0,
         C::configuration,
         {"AADSTS53003", "Conditional Access"},
         {},
         "invalid_grant",
         "AADSTS53003"},
        {"loop detected",
         400,
         entra_error(
             "invalid_request", "50196",
             "The server terminated an operation because it encountered a client request loop."),
         0,
         C::temporary,
         {"AADSTS50196", "request loop"},
         {},
         "invalid_request",
         "AADSTS50196"},
        {"tenant throttled",
         400,
         entra_error("invalid_request", "90055",
                     "TenantThrottlingError - There are too many incoming requests."),
         0,
         C::temporary,
         {"AADSTS90055", "throttling"},
         {},
         "invalid_request",
         "AADSTS90055"},
        {"429 with Retry-After",
         429,
         entra_error("temporarily_unavailable", "90055", "TenantThrottlingError"),
         60,
         C::temporary,
         {"[HTTP 429]", "[retry after 60 s]"},
         {},
         "temporarily_unavailable",
         "AADSTS90055"},
        {"429 empty body",
         429,
         "",
         30,
         C::temporary,
         {"throttled", "[HTTP 429]", "[retry after 30 s]"},
         {},
         "",
         ""},
        {"503 html",
         503,
         "<html><body>Service Unavailable</body></html>\r\nmore",
         0,
         C::temporary,
         {"server error", "[HTTP 503]", "Service Unavailable"},
         {"more"},
         "",
         ""},
        {"500 json",
         500,
         entra_error("server_error", "90033", "A transient error has occurred. Please try again."),
         0,
         C::temporary,
         {"server_error: AADSTS90033", "[HTTP 500]"},
         {},
         "server_error",
         "AADSTS90033"},
        {"temporarily_unavailable 400",
         400,
         R"({"error":"temporarily_unavailable","error_description":"AADSTS90006: busy"})",
         0,
         C::temporary,
         {"temporarily_unavailable: AADSTS90006: busy"},
         {},
         "temporarily_unavailable",
         "AADSTS90006"},
        {"malformed 400",
         400,
         "{\"error\":",
         0,
         C::temporary,
         {"malformed answer", "[HTTP 400]"},
         {},
         "",
         ""},
        {"error not a string", 400, R"({"error":42})", 0, C::temporary, {"malformed"}, {}, "", ""},
        {"proxy 407 html",
         407,
         "<html>Proxy Authentication Required</html>",
         0,
         C::temporary,
         {"malformed", "[HTTP 407]", "Proxy Authentication Required"},
         {},
         "",
         ""},
        {"code only in error_codes",
         400,
         R"({"error":"invalid_client","error_description":"bad","error_codes":[7000215]})",
         0,
         C::configuration,
         {"invalid_client: AADSTS7000215: bad", "hint:"},
         {},
         "invalid_client",
         "AADSTS7000215"},
        {"no description",
         400,
         R"({"error":"invalid_request"})",
         0,
         C::configuration,
         {"invalid_request"},
         {"hint"},
         "invalid_request",
         ""},
        {"consent_required",
         400,
         R"({"error":"consent_required","error_description":"AADSTS65001: no"})",
         0,
         C::configuration,
         {"consent_required"},
         {},
         "consent_required",
         "AADSTS65001"},
        {"pending",
         400,
         entra_error("authorization_pending", "70016",
                     "OAuth 2.0 device flow error. Authorization is pending. Continue polling."),
         0,
         C::temporary,
         {"authorization_pending"},
         {},
         "authorization_pending",
         "AADSTS70016"},
        {"slow_down",
         400,
         R"({"error":"slow_down","error_description":"slow"})",
         0,
         C::temporary,
         {"slow_down"},
         {},
         "slow_down",
         ""},
        {"declined",
         400,
         entra_error("authorization_declined", "70000",
                     "The user declined the authorization request."),
         0,
         C::permanent,
         {"authorization_declined", "login shared` again"},
         {},
         "authorization_declined",
         "AADSTS70000"},
        {"expired_token",
         400,
         entra_error("expired_token", "70020", "The device code has expired."),
         0,
         C::permanent,
         {"expired_token"},
         {},
         "expired_token",
         "AADSTS70020"},
        {"bad_verification_code",
         400,
         R"({"error":"bad_verification_code"})",
         0,
         C::permanent,
         {"bad_verification_code"},
         {},
         "bad_verification_code",
         ""},
        {"control characters",
         400,
         "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS1: a\\u0007b\\u001bc\"}",
         0,
         C::configuration,
         {"AADSTS1: a b c"},
         {"\x07", "\x1b"},
         "invalid_grant",
         "AADSTS1"},
    };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(oauth_errors)

BOOST_AUTO_TEST_CASE(classification_table) {
    for (const Row& r : rows()) {
        BOOST_TEST_CONTEXT(r.name) {
            OAuthError e = classify_token_error(r.status, r.body, r.retry_after, "shared");
            std::string m = e.what();
            BOOST_TEST(to_string(e.error_class()) == to_string(r.cls));
            for (const auto& s : r.contains)
                BOOST_TEST(m.find(s) != std::string::npos, "'" << m << "' lacks '" << s << "'");
            for (const auto& s : r.absent)
                BOOST_TEST(m.find(s) == std::string::npos, "'" << m << "' has '" << s << "'");
            BOOST_TEST(e.oauth_error() == r.oauth_error);
            BOOST_TEST(e.aadsts() == r.aadsts);
            BOOST_TEST(e.http_status() == r.status);
            BOOST_TEST(e.retry_after() == r.retry_after);
            BOOST_TEST(m.find('\n') == std::string::npos);
            BOOST_TEST(m.size() < 800u);
            // The same answer through the token reader throws the same error.
            try {
                read_token_answer(r.status, r.body, r.retry_after, "shared");
                BOOST_ERROR("no exception");
            } catch (const OAuthError& t) {
                BOOST_TEST(std::string(t.what()) == m);
                BOOST_TEST(to_string(t.error_class()) == to_string(r.cls));
            }
        }
    }
    (void)kT;
}

BOOST_AUTO_TEST_CASE(error_in_a_200_answer_is_classified) {
    BOOST_CHECK_EXCEPTION(
        read_token_answer(200, entra_error("invalid_client", "7000215", "Invalid client secret."),
                          0),
        OAuthError, [](const OAuthError& e) {
            return e.error_class() == ErrorClass::configuration && e.aadsts() == "AADSTS7000215";
        });
}

BOOST_AUTO_TEST_CASE(success_answers) {
    TokenGrant g = read_token_answer(
        200,
        R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QifQ.abc.def"})",
        0);
    BOOST_TEST(g.access_token == "eyJ0eXAiOiJKV1QifQ.abc.def");
    BOOST_TEST(g.expires_in == 3599);
    BOOST_TEST(g.refresh_token.empty());
    BOOST_TEST(redact("t=eyJ0eXAiOiJKV1QifQ.abc.def") == "t=[redacted]");

    // expires_in as a string (older endpoints), delegated answer with rotation.
    g = read_token_answer(
        200,
        R"({"token_type":"bearer","scope":"https://outlook.office.com/SMTP.Send",)"
        R"("expires_in":"4785","ext_expires_in":"4785","access_token":"AT-abcdefgh",)"
        R"("refresh_token":"0.ARrefresh-token-1"})",
        0);
    BOOST_TEST(g.expires_in == 4785);
    BOOST_TEST(g.access_token == "AT-abcdefgh");
    BOOST_TEST(g.refresh_token == "0.ARrefresh-token-1");
    BOOST_TEST(redact("x AT-abcdefgh 0.ARrefresh-token-1") == "x [redacted] [redacted]");
}

BOOST_AUTO_TEST_CASE(malformed_success_answers_are_temporary) {
    struct M {
        std::string body;
        std::string why;
    };
    const M ms[] = {
        {"", "not JSON"},
        {"{\"access_token\":\"abc", "not JSON"},
        {"[1,2]", "not a JSON object"},
        {R"({"token_type":"Bearer","expires_in":3599})", "no access_token"},
        {R"({"access_token":null,"expires_in":3599})", "no access_token"},
        {R"({"access_token":"","expires_in":3599})", "empty or not printable"},
        {R"({"access_token":"has space","expires_in":3599})", "empty or not printable"},
        {R"({"access_token":"a\r\nMAIL FROM:<x>","expires_in":3599})", "empty or not printable"},
        {R"({"access_token":12345,"expires_in":3599})", "no access_token"},
        {R"({"access_token":"tok12345"})", "no expires_in"},
        {R"({"access_token":"tok12345","expires_in":"soon"})", "not a number"},
        {R"({"access_token":"tok12345","expires_in":"-5"})", "not a number"},
        {R"({"access_token":"tok12345","expires_in":0})", "out of range"},
        {R"({"access_token":"tok12345","expires_in":-1})", "out of range"},
        {R"({"access_token":"tok12345","expires_in":99999999999999999999})",
         "missing or not a number"},
        {R"({"access_token":"tok12345","expires_in":1e3})", "missing or not a number"},
        {R"({"access_token":"tok12345","expires_in":true})", "missing or not a number"},
        {R"({"access_token":"tok12345","expires_in":3599,"token_type":"mac"})", "not Bearer"},
        {R"({"access_token":"tok12345","expires_in":3599,"refresh_token":7})", "refresh_token"},
    };
    for (const auto& m : ms) {
        BOOST_TEST_CONTEXT(m.body) {
            try {
                read_token_answer(200, m.body, 0);
                BOOST_ERROR("accepted");
            } catch (const OAuthError& e) {
                std::string w = e.what();
                BOOST_TEST((e.error_class() == ErrorClass::temporary));
                BOOST_TEST(w.find("malformed token answer from Entra") != std::string::npos, w);
                BOOST_TEST(w.find(m.why) != std::string::npos, w << " lacks " << m.why);
                BOOST_TEST(w.find("tok12345") == std::string::npos);  // body never quoted
                BOOST_TEST(e.http_status() == 200);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(device_code_answers) {
    DeviceCode d = read_device_code_answer(
        200,
        R"({"user_code":"FQK5HW3UF","device_code":"DAQABAAEAAAD--DLA3VO7QrddgJg7Wevr","verification_uri":"https://microsoft.com/devicelogin","expires_in":"900","interval":5,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FQK5HW3UF to authenticate."})",
        0);
    BOOST_TEST(d.user_code == "FQK5HW3UF");
    BOOST_TEST(d.verification_uri == "https://microsoft.com/devicelogin");
    BOOST_TEST(d.expires_in == 900);
    BOOST_TEST(d.interval == 5);
    BOOST_TEST(d.message.find("FQK5HW3UF") != std::string::npos);
    BOOST_TEST(redact(d.device_code) == "[redacted]");
    d = read_device_code_answer(
        200, R"({"user_code":"A","device_code":"dc-12345678","verification_url":"https://x"})", 0);
    BOOST_TEST(d.interval == 5);
    BOOST_TEST(d.expires_in == 900);
    BOOST_TEST(d.verification_uri == "https://x");
    BOOST_CHECK_THROW(read_device_code_answer(200, R"({"user_code":"A"})", 0), OAuthError);
    BOOST_CHECK_EXCEPTION(read_device_code_answer(
                              400, entra_error("invalid_scope", "70011", "bad scope"), 0, "shared"),
                          OAuthError, [](const OAuthError& e) {
                              return e.error_class() == ErrorClass::configuration;
                          });
}

BOOST_AUTO_TEST_CASE(aadsts_hints) {
    for (const char* code : {"7000215", "7000222", "700016", "700027", "70011", "500011", "65001",
                             "70008", "700082", "50173", "50076", "53003", "50196", "90055"}) {
        BOOST_TEST(!aadsts_hint(code).empty(), code);
        BOOST_TEST(aadsts_hint(std::string("AADSTS") + code) == aadsts_hint(code));
        BOOST_TEST(aadsts_hint(std::string("aadsts") + code) == aadsts_hint(code));
    }
    BOOST_TEST(aadsts_hint("12345").empty());
    BOOST_TEST(aadsts_hint("").empty());
    BOOST_TEST(aadsts_hint("AADSTS").empty());
    BOOST_TEST(aadsts_hint("7000215x").empty());
    BOOST_TEST(aadsts_hint("70008").find("login ACCOUNT") != std::string::npos);
    BOOST_TEST(aadsts_hint("70008", "noreply").find("login noreply`") != std::string::npos);
    BOOST_TEST(aadsts_is_temporary("AADSTS90055"));
    BOOST_TEST(aadsts_is_temporary("50196"));
    BOOST_TEST(!aadsts_is_temporary("7000215"));
    BOOST_TEST(aadsts_number("AADSTS700016") == "700016");
    BOOST_TEST(aadsts_number("x1").empty());
}

BOOST_AUTO_TEST_SUITE_END()
