// Tests of transport/args: the pipe(8) argv contract.
#include <boost/test/unit_test.hpp>

#include "args.hpp"

using namespace o365;

namespace {

TransportArgs parse(std::vector<std::string> v) {
    v.insert(v.begin(), "o365relay-transport");
    return parse_transport_args(v);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(transport_args)

BOOST_AUTO_TEST_CASE(master_cf_contract) {
    auto a = parse({"-c", "/etc/o365relay/o365relay.conf", "-f", "app@apps.contoso.com", "-q",
                    "4F2A31C2D", "-n", "noreply", "--", "bob@example.org", "-dash@example.org"});
    BOOST_TEST(a.config_path == "/etc/o365relay/o365relay.conf");
    BOOST_TEST(a.sender == "app@apps.contoso.com");
    BOOST_TEST(a.queue_id == "4F2A31C2D");
    BOOST_TEST(a.nexthop == "noreply");
    BOOST_TEST(a.recipients.size() == 2u);
    BOOST_TEST(a.recipients[1] == "-dash@example.org");  // after --: an address
}

BOOST_AUTO_TEST_CASE(defaults_and_forms) {
    auto a = parse({"-f", "", "--", "bob@example.org"});  // null sender
    BOOST_TEST(a.sender == "");
    BOOST_TEST(a.config_path == kDefaultConfigPath);
    BOOST_TEST(a.nexthop == "");
    auto b = parse({"-cconf.ini", "-fa@b.c", "-qQ1", "-nacc", "--", "\"john doe\"@example.org"});
    BOOST_TEST(b.config_path == "conf.ini");
    BOOST_TEST(b.sender == "a@b.c");
    BOOST_TEST(b.nexthop == "acc");
    BOOST_TEST(b.recipients[0] == "\"john doe\"@example.org");
    auto c = parse({"-n", "acc", "-f", "a@b.c", "--", "x@y.z"});  // any order
    BOOST_TEST(c.nexthop == "acc");
}

BOOST_AUTO_TEST_CASE(usage_errors) {
    struct Row {
        std::vector<std::string> args;
        const char* expect;
    };
    const Row rows[] = {
        {{}, "missing --"},
        {{"-f", "a@b.c"}, "missing --"},
        {{"-f", "a@b.c", "--"}, "no recipient"},
        {{"--", "x@y.z"}, "missing -f"},
        {{"-f", "a@b.c", "-f", "d@e.f", "--", "x@y.z"}, "given twice"},
        {{"-x", "1", "-f", "a@b.c", "--", "x@y.z"}, "unknown option"},
        {{"-f"}, "needs a value"},
        {{"stray", "-f", "a@b.c", "--", "x@y.z"}, "unexpected argument"},
        {{"-f", "a@b.c", "-q", "Q\n", "--", "x@y.z"}, "control character in the value of -q"},
        {{"-f", "a@b.c", "-n", "acc\t", "--", "x@y.z"}, "control character"},
        {{"-c", "", "-f", "a@b.c", "--", "x@y.z"}, "empty -c"},
        // Invalid sender or recipient addresses are not usage errors: they
        // bounce (transport/envelope.hpp, tests/unit/test_transport_delivery.cpp).
    };
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.expect) {
            try {
                parse(r.args);
                BOOST_FAIL("no error");
            } catch (const UsageError& e) {
                BOOST_TEST(std::string(e.what()).find(r.expect) != std::string::npos, e.what());
                BOOST_TEST(std::string(e.what()).find("usage:") != std::string::npos);
                BOOST_TEST(std::string(e.what()).find('\n') == std::string::npos);
                BOOST_TEST(std::string(e.what()).find('\r') == std::string::npos);
            }
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
