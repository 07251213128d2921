// Tests of transport/delivery's pure parts: the null-sender From rewrite and
// the log line shape (the whole delivery runs end to end in tests/transport).
#include <boost/test/unit_test.hpp>

#include "delivery.hpp"

using namespace o365;

namespace {

std::shared_ptr<const Config> config() {
    return parse_config(
        "[entra]\ntenant = t\nclient_id = c\nclient_secret_file = /nonexistent\n"
        "[account noreply]\nmailbox = noreply@contoso.com\nsenders = noreply@contoso.com, "
        "@apps.contoso.com\n",
        "test.conf");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(transport_delivery)

BOOST_AUTO_TEST_CASE(null_sender_from_rewrite) {
    auto cfg = config();
    Resolver res(cfg);
    const Account& a = *cfg->find_account("noreply");
    struct Row {
        const char* value;
        std::optional<std::string> out;
    };
    const Row rows[] = {
        {" MAILER-DAEMON@relay.test (Mail Delivery System)",
         "\"Mail Delivery System\" <noreply@contoso.com>"},
        {" Mail Delivery System <MAILER-DAEMON@relay.test>",
         "Mail Delivery System <noreply@contoso.com>"},
        {" \"Postmaster, Relay\" <postmaster@relay.test>",
         "\"Postmaster, Relay\" <noreply@contoso.com>"},
        {" MAILER-DAEMON@relay.test", "<noreply@contoso.com>"},
        {" (Say \"hi\")", "\"Say \\\"hi\\\"\" <noreply@contoso.com>"},
        // already an address the account may send as: kept
        {" App <app@apps.contoso.com>", std::nullopt},
        {" noreply@contoso.com", std::nullopt},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.value) {
            auto got = rewrite_null_sender_from(res, a, r.value);
            BOOST_TEST(got.has_value() == r.out.has_value());
            if (got && r.out) BOOST_TEST(*got == *r.out);
        }
    }
}

BOOST_AUTO_TEST_CASE(log_lines_in_postfix_manner) {
    DeliveryReport rep;
    rep.queue_id = "4F2A31C2D";
    rep.account = "noreply";
    rep.relay = "smtp.office365.com[52.96.0.1]:587";
    rep.delays[0] = 0.01;
    rep.delays[1] = 0.05;
    rep.delays[2] = 0.31;
    rep.delays[3] = 0.12;
    rep.recipients = {"bob@example.org", "eve@example.org"};
    ReplyParser p;
    p.feed("250 2.0.0 OK <id@x> [Hostname=AM0PR01]\r\n");
    rep.final_reply = *p.next();
    rep.outcome = delivered(*rep.final_reply, rep.relay);
    auto lines = rep.log_lines();
    BOOST_REQUIRE(lines.size() == 2u);
    BOOST_TEST(lines[0] ==
               "4F2A31C2D: to=<bob@example.org>, account=noreply, "
               "relay=smtp.office365.com[52.96.0.1]:587, delays=0.01/0.05/0.31/0.12, dsn=2.0.0, "
               "status=sent (250 2.0.0 OK <id@x> [Hostname=AM0PR01])");
    BOOST_TEST(lines[1].find("to=<eve@example.org>") != std::string::npos);

    DeliveryReport d;
    d.queue_id = "Q";
    d.recipients = {"x@y.z"};
    d.outcome = decide(local_failure(Cause::no_account, Stage::none, "sender s@t is not allowed"));
    BOOST_TEST(d.log_lines().at(0) ==
               "Q: to=<x@y.z>, account=none, relay=none, delays=0.00/0.00/0.00/0.00, dsn=5.7.1, "
               "status=bounced (sender s@t is not allowed)");
    d.outcome = decide(local_failure(Cause::timeout, Stage::rcpt_to, "timed out"));
    BOOST_TEST(d.log_lines().at(0).find("dsn=4.4.2, status=deferred (timed out)") !=
               std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
