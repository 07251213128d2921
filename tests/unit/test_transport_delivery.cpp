// Tests of transport/delivery's pure parts: the null-sender From rewrite, the
// log line shape, the next hop rule, the envelope checks, and deliver() for
// the failures that must happen before any token request or connection (the
// whole delivery runs end to end in tests/transport).
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include "delivery.hpp"
#include "envelope.hpp"

using namespace o365;

namespace {

std::shared_ptr<const Config> config() {
    return parse_config(
        "[entra]\ntenant = t\nclient_id = c\nclient_secret_file = /nonexistent\n"
        "[account noreply]\nmailbox = noreply@contoso.com\nsenders = noreply@contoso.com, "
        "@apps.contoso.com\n",
        "test.conf");
}

// Counts token calls; every call fails (no delivery in these tests gets that far).
class CountingTokens : public TokenProvider {
  public:
    int calls = 0;
    AccessToken get(const Account&, TokenDeadline) override { return none(); }
    AccessToken refresh(const Account&, const std::string&, TokenDeadline) override {
        return none();
    }
    void reject(const Account&, const std::string&, const std::string&) noexcept override {
        ++calls;
    }

  private:
    AccessToken none() {
        ++calls;
        throw Error(ErrorClass::temporary, "test: no token");
    }
};

// deliver() with `message` on a pipe as stdin.
DeliveryReport run_delivery(TokenProvider& tokens, const TransportArgs& args) {
    auto cfg = config();
    Resolver res(cfg);
    int fds[2];
    BOOST_REQUIRE(::pipe(fds) == 0);
    const std::string msg = "From: noreply@contoso.com\n\nhello\n";
    BOOST_REQUIRE(::write(fds[1], msg.data(), msg.size()) == static_cast<ssize_t>(msg.size()));
    ::close(fds[1]);
    DeliveryReport rep = deliver(*cfg, res, tokens, args, fds[0]);
    ::close(fds[0]);
    return rep;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(transport_delivery)

BOOST_AUTO_TEST_CASE(nexthop_names_an_account_or_is_postfix_default) {
    struct Row {
        const char* nexthop;
        bool names_account;
    };
    const std::vector<std::string> rcpts = {"bob@Example.org", "eve@example.org"};
    const Row rows[] = {
        {"noreply", true},       // o365:noreply in the sender map
        {"old-account", true},   // an account renamed or removed since
        {"sales.eu", true},      // account names may contain dots
        {"example.org", false},  // plain o365: -> the recipients' domain
        {"EXAMPLE.ORG", false},  // domains compare case-insensitively
        {"", false},             // no next hop
        {"[smtp.example.net]", false},
        {"[smtp.example.net]:587", false},
        {"relay.example.net:25", false},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.nexthop) {
            BOOST_TEST(nexthop_names_account(r.nexthop, rcpts) == r.names_account);
        }
    }
}

BOOST_AUTO_TEST_CASE(address_problems) {
    struct Row {
        std::string address;
        const char* problem;  // "" when valid
    };
    const std::string l64(64, 'l'), l65(65, 'l');
    std::string long_domain;
    while (long_domain.size() < 240)
        long_domain += std::string(60, 'd') + ".";
    long_domain += "example";
    const Row rows[] = {
        {"bob@example.org", ""},
        {"\"john doe\"@example.org", ""},
        {l64 + "@example.org", ""},
        {l65 + "@example.org", "local part is longer than 64"},
        {"bob@" + long_domain, "longer than 254 octets"},
        {"nobody", "no '@'"},
        {"bob@example.org\r\nRSET", "control character"},
        {"b\tob@example.org", "control character"},
        {std::string("bob@example.org\0", 16), "control character"},
        {"bob@", "not an address"},
        {"a b@example.org", "not an address"},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(printable(r.address)) {
            std::string why = address_problem(r.address);
            if (*r.problem == '\0')
                BOOST_TEST(why.empty(), why);
            else
                BOOST_TEST(why.find(r.problem) != std::string::npos, why);
        }
    }
}

BOOST_AUTO_TEST_CASE(envelope_failure_sender_first_then_recipients) {
    BOOST_TEST(!envelope_failure("", {"bob@example.org"}));  // the null sender is valid
    BOOST_TEST(!envelope_failure("a@b.example", {"bob@example.org"}));

    auto f = envelope_failure("a@b.example\r\nRCPT TO:<evil@x>", {"nobody"});
    BOOST_REQUIRE(f);
    BOOST_TEST((f->cause == Cause::invalid_sender));
    BOOST_TEST(f->detail.find('\r') == std::string::npos);
    BOOST_TEST(f->detail.find("a@b.example??RCPT") != std::string::npos, f->detail);

    f = envelope_failure("a@b.example", {"nobody"});
    BOOST_REQUIRE(f);
    BOOST_TEST((f->cause == Cause::invalid_recipient));
    BOOST_TEST(f->recipient == "nobody");
    BOOST_TEST(!f->others_accepted);

    f = envelope_failure("a@b.example", {"ok@example.org", "nobody", "x\n@y"});
    BOOST_REQUIRE(f);
    BOOST_TEST(f->recipient == "nobody");
    BOOST_TEST(f->others_accepted);
}

BOOST_AUTO_TEST_CASE(invalid_envelope_bounces_before_any_token_or_connection) {
    struct Row {
        std::string sender;
        std::vector<std::string> rcpts;
        int exit_status;
        const char* dsn;
    };
    const Row rows[] = {
        {"noreply@contoso.com", {"nobody"}, 67, "5.1.3"},
        {"noreply@contoso.com", {std::string(65, 'x') + "@example.org"}, 67, "5.1.3"},
        {"noreply@contoso.com", {"bob@example.org\r\nRSET"}, 67, "5.1.3"},
        {"noreply@contoso.com\r\nRCPT TO:<e@x>", {"bob@example.org"}, 69, "5.1.7"},
        {std::string(65, 'n') + "@contoso.com", {"bob@example.org"}, 69, "5.1.7"},
        // one invalid among valid recipients: all-or-nothing, defer
        {"noreply@contoso.com", {"bob@example.org", "nobody"}, 75, "4.1.3"},
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(printable(r.sender) << " -> " << printable(r.rcpts.back())) {
            CountingTokens tokens;
            TransportArgs args;
            args.sender = r.sender;
            args.recipients = r.rcpts;
            args.nexthop = "noreply";
            args.queue_id = "Q1";
            DeliveryReport rep = run_delivery(tokens, args);
            BOOST_TEST(rep.outcome.exit_status == r.exit_status, rep.outcome.status_line);
            BOOST_TEST(rep.outcome.dsn() == r.dsn);
            BOOST_TEST(tokens.calls == 0);
            BOOST_TEST(rep.relay.empty());  // never connected
            for (const auto& line : rep.log_lines())
                BOOST_TEST(line.find_first_of("\r\n") == std::string::npos, line);
        }
    }
}

BOOST_AUTO_TEST_CASE(nexthop_naming_an_unknown_account_defers_435) {
    CountingTokens tokens;
    TransportArgs args;
    args.sender = "noreply@contoso.com";  // resolvable: must NOT be used instead
    args.recipients = {"bob@example.org"};
    args.nexthop = "renamed";
    DeliveryReport rep = run_delivery(tokens, args);
    BOOST_TEST(rep.outcome.exit_status == kExTempFail);
    BOOST_TEST(rep.outcome.dsn() == "4.3.5");
    BOOST_TEST(rep.outcome.status_line.find("account renamed") != std::string::npos,
               rep.outcome.status_line);
    BOOST_TEST(rep.outcome.status_line.find("postsuper -r") != std::string::npos);
    BOOST_TEST(tokens.calls == 0);

    // Postfix's default next hop (the recipient domain) still resolves the sender:
    // it gets as far as the token.
    args.nexthop = "example.org";
    rep = run_delivery(tokens, args);
    BOOST_TEST(rep.account == "noreply");
    BOOST_TEST(rep.outcome.dsn() == "4.7.0", rep.outcome.status_line);
    BOOST_TEST(tokens.calls == 1);
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
               "relay=smtp.office365.com[52.96.0.1]:587, delay=0.49, delays=0.01/0.05/0.31/0.12, "
               "dsn=2.0.0, "
               "status=sent (250 2.0.0 OK <id@x> [Hostname=AM0PR01])");
    BOOST_TEST(lines[1].find("to=<eve@example.org>") != std::string::npos);

    DeliveryReport d;
    d.queue_id = "Q";
    d.recipients = {"x@y.z"};
    d.outcome = decide(local_failure(Cause::no_account, Stage::none, "sender s@t is not allowed"));
    BOOST_TEST(d.log_lines().at(0) ==
               "Q: to=<x@y.z>, account=none, relay=none, delay=0.00, delays=0.00/0.00/0.00/0.00, "
               "dsn=5.7.1, "
               "status=bounced (sender s@t is not allowed)");
    d.outcome = decide(local_failure(Cause::timeout, Stage::rcpt_to, "timed out"));
    BOOST_TEST(d.log_lines().at(0).find("dsn=4.4.2, status=deferred (timed out)") !=
               std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
