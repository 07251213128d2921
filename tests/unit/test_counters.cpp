// Unit tests of common/counters: the classification table, the counts, the
// rolling windows, the trust rules and concurrent processes (fork).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "counters.hpp"
#include "delivery_status.hpp"
#include "error.hpp"
#include "failure.hpp"

using namespace o365;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/o365-counters-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

SmtpReply reply(int code, const std::string& enhanced, const std::string& text) {
    SmtpReply r;
    r.code = code;
    r.enhanced = enhanced;
    r.lines.push_back(enhanced.empty() ? text : enhanced + " " + text);
    return r;
}

Outcome server(Stage stage, int code, const std::string& enhanced, const std::string& text) {
    Failure f;
    f.cause = Cause::server_reply;
    f.stage = stage;
    f.reply = reply(code, enhanced, text);
    f.peer = "smtp.office365.com[52.96.0.1]:587";
    return decide(f);
}

Outcome local(Cause cause) {
    return decide(local_failure(cause, Stage::none, "something happened"));
}

Outcome sent_outcome() {
    return delivered(reply(250, "2.0.0", "OK <id@x> [Hostname=X]"),
                     "smtp.office365.com[52.96.0.1]:587");
}

Outcome graph(Stage stage, int status, const char* code, const char* message) {
    Failure f;
    f.cause = Cause::graph_reply;
    f.stage = stage;
    f.http_status = status;
    f.graph_code = code;
    f.graph_message = message;
    f.peer = "graph.microsoft.com[20.190.0.1]:443";
    return decide(f);
}

struct Row {
    const char* name;
    Outcome outcome;
    DeliveryResult result;
    ReasonClass reason;
    std::optional<ThrottleKind> throttle;
};

}  // namespace

BOOST_AUTO_TEST_CASE(classify_delivery_table) {
    using R = ReasonClass;
    using D = DeliveryResult;
    const Row rows[] = {
        {"sent", sent_outcome(), D::sent, R::other, std::nullopt},
        {"graph 429",
         graph(Stage::graph_sendmail, 429, "ApplicationThrottled",
               "Application is over its MailboxConcurrency limit."),
         D::deferred, R::throttle, ThrottleKind::graph_429},
        {"graph 403 access denied",
         graph(Stage::graph_sendmail, 403, "ErrorAccessDenied", "Access is denied."), D::deferred,
         R::account, std::nullopt},
        {"graph 403 send as denied",
         graph(Stage::graph_sendmail, 403, "ErrorSendAsDenied", "no send as"), D::bounced,
         R::sender, std::nullopt},
        {"graph 401", graph(Stage::graph_sendmail, 401, "InvalidAuthenticationToken", "expired"),
         D::deferred, R::token, std::nullopt},
        {"graph 503", graph(Stage::graph_sendmail, 503, "ServiceUnavailable", "busy"), D::deferred,
         R::network, std::nullopt},
        {"432 at AUTH", server(Stage::auth, 432, "4.3.2", "Concurrent connections limit exceeded"),
         D::deferred, R::throttle, ThrottleKind::smtp_concurrency},
        {"server busy at eod", server(Stage::end_of_data, 451, "4.7.500", "Server busy"),
         D::deferred, R::throttle, ThrottleKind::smtp_busy},
        {"connect", local(Cause::connect), D::deferred, R::network, std::nullopt},
        {"timeout", local(Cause::timeout), D::deferred, R::network, std::nullopt},
        {"tls", local(Cause::tls), D::deferred, R::network, std::nullopt},
        {"deadline", local(Cause::deadline), D::deferred, R::network, std::nullopt},
        {"token", local(Cause::token), D::deferred, R::token, std::nullopt},
        {"config", local(Cause::config), D::deferred, R::config, std::nullopt},
        {"account mismatch", local(Cause::account_mismatch), D::deferred, R::config, std::nullopt},
        {"internal", local(Cause::internal), D::deferred, R::other, std::nullopt},
        {"no account", local(Cause::no_account), D::bounced, R::sender, std::nullopt},
        {"invalid recipient", local(Cause::invalid_recipient), D::bounced, R::recipient,
         std::nullopt},
        {"smtputf8", local(Cause::smtputf8_unsupported), D::bounced, R::content, std::nullopt},
        {"535 after refresh", server(Stage::auth, 535, "5.7.3", "Authentication unsuccessful"),
         D::deferred, R::token, std::nullopt},
        {"auth disabled",
         server(Stage::auth, 535, "5.7.139", "SmtpClientAuthentication is disabled"), D::deferred,
         R::account, std::nullopt},
        {"bad outbound sender", server(Stage::mail_from, 550, "5.1.8", "Access denied"),
         D::deferred, R::account, std::nullopt},
        {"quota",
         server(Stage::end_of_data, 554, "5.2.0",
                "STOREDRV.Submission.Exception:SubmissionQuotaExceededException"),
         D::deferred, R::account, std::nullopt},
        {"5.2.254 block", server(Stage::rcpt_to, 550, "5.2.254", "blocked"), D::deferred,
         R::account, std::nullopt},
        {"send as denied",
         server(Stage::end_of_data, 554, "5.2.252", "SendAsDenied; x not allowed"), D::bounced,
         R::sender, std::nullopt},
        {"5.7.60", server(Stage::mail_from, 550, "5.7.60", "no send as"), D::bounced, R::sender,
         std::nullopt},
        {"recipient unknown", server(Stage::rcpt_to, 550, "5.1.1", "User unknown"), D::bounced,
         R::recipient, std::nullopt},
        {"recipient deferred", server(Stage::rcpt_to, 450, "4.2.0", "try later"), D::deferred,
         R::recipient, std::nullopt},
        {"too big", server(Stage::mail_from, 552, "5.3.4", "Message size exceeds"), D::bounced,
         R::content, std::nullopt},
        {"content refused", server(Stage::end_of_data, 550, "5.7.1", "spam"), D::bounced,
         R::content, std::nullopt},
        {"mail from refused", server(Stage::mail_from, 550, "5.7.1", "no"), D::bounced, R::sender,
         std::nullopt},
        {"greeting 421", server(Stage::greeting, 421, "4.7.66", "TLS 1.0 refused"), D::deferred,
         R::network, std::nullopt},
        {"ehlo 454", server(Stage::ehlo, 454, "4.7.0", "temporary"), D::deferred, R::network,
         std::nullopt},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.name << ": " << r.outcome.status_line) {
            DeliveryClass c = classify_delivery(r.outcome);
            BOOST_TEST(result_name(c.result) == result_name(r.result));
            if (r.result != DeliveryResult::sent)
                BOOST_TEST(reason_name(c.reason) == reason_name(r.reason));
            BOOST_TEST(c.throttle.has_value() == r.throttle.has_value());
            if (c.throttle && r.throttle)
                BOOST_TEST(throttle_name(*c.throttle) == throttle_name(*r.throttle));
        }
    }
}

BOOST_AUTO_TEST_CASE(classify_throttle_replies) {
    auto name = [](const SmtpReply& r) {
        auto k = classify_throttle(r);
        return k ? std::string(throttle_name(*k)) : std::string("none");
    };
    BOOST_TEST(name(reply(432, "4.3.2", "Concurrent connections")) == "smtp_4.3.2");
    BOOST_TEST(name(reply(451, "4.7.500", "Server busy")) == "smtp_4.7.500");
    BOOST_TEST(!classify_throttle(reply(451, "4.3.0", "Other")).has_value());
    BOOST_TEST(!classify_throttle(reply(250, "2.0.0", "OK")).has_value());
}

BOOST_AUTO_TEST_CASE(counts_by_result_and_reason) {
    TempDir d;
    std::int64_t now = 1'800'000'000;
    Counters c(d.path, [&] { return now; });
    c.record_delivery("a", sent_outcome(), 3);
    c.record_delivery("a", sent_outcome(), 1);
    c.record_delivery("a", server(Stage::auth, 432, "4.3.2", "Concurrent connections"), 1);
    c.record_delivery("a", server(Stage::rcpt_to, 550, "5.1.1", "User unknown"), 1);
    c.record_delivery("b", local(Cause::token), 1);
    c.record_throttle("a", ThrottleKind::graph_429);
    c.record_token_request("a");
    c.record_token_request("a");
    c.record_token_failure("a");

    CounterSnapshot a = c.read("a");
    BOOST_TEST(a.sent_total == 2u);
    BOOST_TEST(a.recipients_total == 4u);
    BOOST_TEST(a.deferred_sum() == 1u);
    BOOST_TEST(a.deferred_total[static_cast<int>(ReasonClass::throttle)] == 1u);
    BOOST_TEST(a.bounced_sum() == 1u);
    BOOST_TEST(a.bounced_total[static_cast<int>(ReasonClass::recipient)] == 1u);
    BOOST_TEST(a.throttles_total[static_cast<int>(ThrottleKind::smtp_concurrency)] == 1u);
    BOOST_TEST(a.throttles_total[static_cast<int>(ThrottleKind::graph_429)] == 1u);
    BOOST_TEST(a.throttles_sum() == 2u);
    BOOST_TEST(a.token_requests_total == 2u);
    BOOST_TEST(a.token_failures_total == 1u);
    BOOST_TEST(a.sent_24h == 2u);
    BOOST_TEST(a.deferred_24h == 1u);
    BOOST_TEST(a.bounced_24h == 1u);
    BOOST_TEST(a.recipients_24h == 4u);
    BOOST_TEST(a.messages_last_minute == 2u);
    BOOST_TEST(a.last_failure_at == now);
    BOOST_TEST(result_name(a.last_failure_result) == "bounced");
    BOOST_TEST(a.last_failure.find("550 5.1.1 User unknown") != std::string::npos);

    CounterSnapshot b = c.read("b");
    BOOST_TEST(b.sent_total == 0u);
    BOOST_TEST(b.deferred_total[static_cast<int>(ReasonClass::token)] == 1u);
    BOOST_TEST(c.read("nobody").sent_total == 0u);  // no file: zeros

    struct stat st {};
    BOOST_REQUIRE(::stat(c.path("a").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
    BOOST_REQUIRE(::stat((d.path + "/counters").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0700u);
}

BOOST_AUTO_TEST_CASE(minute_window_rolls) {
    TempDir d;
    std::int64_t now = 1'800'000'000;
    Counters c(d.path, [&] { return now; });
    for (int i = 0; i < 5; ++i)
        c.record_delivery("a", sent_outcome(), 1);
    BOOST_TEST(c.read("a").messages_last_minute == 5u);
    now += 30;
    for (int i = 0; i < 2; ++i)
        c.record_delivery("a", sent_outcome(), 1);
    BOOST_TEST(c.read("a").messages_last_minute == 7u);
    now += 31;  // the first five are 61 s old
    BOOST_TEST(c.read("a").messages_last_minute == 2u);
    now += 60;
    BOOST_TEST(c.read("a").messages_last_minute == 0u);
    BOOST_TEST(c.read("a").sent_total == 7u);  // totals do not roll
    // A bucket reused after a full turn starts from zero.
    c.record_delivery("a", sent_outcome(), 1);
    BOOST_TEST(c.read("a").messages_last_minute == 1u);
}

BOOST_AUTO_TEST_CASE(day_window_rolls) {
    TempDir d;
    std::int64_t now = 1'800'000'000;
    Counters c(d.path, [&] { return now; });
    c.record_delivery("a", sent_outcome(), 100);
    c.record_delivery("a", local(Cause::connect), 1);
    now += 12 * 3600;
    c.record_delivery("a", sent_outcome(), 50);
    CounterSnapshot s = c.read("a");
    BOOST_TEST(s.recipients_24h == 150u);
    BOOST_TEST(s.sent_24h == 2u);
    BOOST_TEST(s.deferred_24h == 1u);
    now += 12 * 3600 + 60;  // the first minute is now more than 24 h old
    s = c.read("a");
    BOOST_TEST(s.recipients_24h == 50u);
    BOOST_TEST(s.sent_24h == 1u);
    BOOST_TEST(s.deferred_24h == 0u);
    BOOST_TEST(s.recipients_total == 150u);
    // 24 h later the bucket of that minute is reused: the old count is gone.
    now += 12 * 3600;
    c.record_delivery("a", sent_outcome(), 7);
    s = c.read("a");
    BOOST_TEST(s.recipients_24h == 7u);
}

BOOST_AUTO_TEST_CASE(concurrent_processes_lose_nothing) {
    TempDir d;
    constexpr int kProcs = 6;
    constexpr int kEach = 300;
    std::vector<pid_t> kids;
    for (int p = 0; p < kProcs; ++p) {
        pid_t pid = ::fork();
        BOOST_REQUIRE(pid >= 0);
        if (pid == 0) {
            Counters c(d.path);
            for (int i = 0; i < kEach; ++i) {
                c.record_delivery("shared", sent_outcome(), 2);
                c.record_token_request("shared");
            }
            ::_exit(0);
        }
        kids.push_back(pid);
    }
    for (pid_t pid : kids) {
        int status = 0;
        BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
        BOOST_TEST(WIFEXITED(status));
        BOOST_TEST(WEXITSTATUS(status) == 0);
    }
    CounterSnapshot s = Counters(d.path).read("shared");
    BOOST_TEST(s.sent_total == std::uint64_t(kProcs * kEach));
    BOOST_TEST(s.recipients_total == std::uint64_t(2 * kProcs * kEach));
    BOOST_TEST(s.token_requests_total == std::uint64_t(kProcs * kEach));
    BOOST_TEST(s.recipients_24h == std::uint64_t(2 * kProcs * kEach));
}

BOOST_AUTO_TEST_CASE(symlink_is_refused_and_counting_never_throws) {
    TempDir d;
    Counters c(d.path);
    c.record_token_request("a");
    const std::string target = d.path + "/elsewhere";
    { std::ofstream(target) << "x"; }
    ::chmod(target.c_str(), 0600);
    fs::remove(c.path("a"));
    fs::create_symlink(target, c.path("a"));
    c.record_token_request("a");  // logged, not thrown
    BOOST_CHECK_THROW(c.read("a"), Error);
    std::ifstream in(target);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    BOOST_TEST(content == "x");  // never written through the link
}

BOOST_AUTO_TEST_CASE(loose_mode_is_fixed_and_bad_layout_reset) {
    TempDir d;
    Counters c(d.path);
    c.record_token_request("a");
    ::chmod(c.path("a").c_str(), 0644);
    c.record_token_request("a");
    struct stat st {};
    BOOST_REQUIRE(::stat(c.path("a").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
    BOOST_TEST(c.read("a").token_requests_total == 2u);
    // A truncated file (another layout) is reset, not misread.
    ::truncate(c.path("a").c_str(), 100);
    BOOST_TEST(c.read("a").token_requests_total == 0u);
    c.record_token_request("a");
    BOOST_TEST(c.read("a").token_requests_total == 1u);
}

BOOST_AUTO_TEST_CASE(loose_directory_is_refused) {
    TempDir d;
    Counters c(d.path);
    c.record_token_request("a");
    ::chmod((d.path + "/counters").c_str(), 0755);
    c.record_token_request("a");  // refused: logged, lost
    ::chmod((d.path + "/counters").c_str(), 0700);
    BOOST_TEST(c.read("a").token_requests_total == 1u);
    ::chmod((d.path + "/counters").c_str(), 0777);
    BOOST_CHECK_THROW(c.read("a"), Error);
}
