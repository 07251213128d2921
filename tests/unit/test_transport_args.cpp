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
        {{"--bogus", "-f", "a@b.c", "--", "x@y.z"}, "unknown option \"--bogus\""},
        {{"-f", "a@b.c", "-n"}, "option -n needs a value"},
        {{"-f", "a@b.c", "stray", "--", "x@y.z"}, "unexpected argument \"stray\""},
        {{"-f", "--", "x@y.z"}, "unexpected argument \"x@y.z\""},  // "--" is -f's value
        // --help and --version only alone: with delivery arguments, Postfix ran it.
        {{"--help", "-f", "a@b.c", "--", "x@y.z"}, "given alone"},
        {{"-f", "a@b.c", "--version", "--", "x@y.z"}, "given alone"},
        {{"--help", "--version"}, "given alone"},
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

BOOST_AUTO_TEST_CASE(help_and_version_alone_are_not_a_delivery) {
    struct Row {
        const char* arg;
        TransportMode mode;
    };
    const Row rows[] = {{"--help", TransportMode::help}, {"--version", TransportMode::version}};
    for (const Row& r : rows) {
        BOOST_TEST_CONTEXT(r.arg) {
            TransportArgs a = parse({r.arg});
            BOOST_TEST((a.mode == r.mode));
            BOOST_TEST(a.recipients.empty());
        }
    }
    BOOST_TEST((parse({"-f", "a@b.c", "--", "x@y.z"}).mode == TransportMode::deliver));
}

BOOST_AUTO_TEST_CASE(after_dashdash_everything_is_a_recipient) {
    auto a = parse({"-f", "a@b.c", "--", "--help", "--", "-f"});
    BOOST_TEST((a.mode == TransportMode::deliver));
    BOOST_TEST(a.recipients == (std::vector<std::string>{"--help", "--", "-f"}),
               boost::test_tools::per_element());
    auto b = parse({"-f", "a@b.c", "--", "-"});
    BOOST_TEST(b.recipients == (std::vector<std::string>{"-"}), boost::test_tools::per_element());
}

// Parsing twice in a row gives the same result (getopt_long's state is reset).
BOOST_AUTO_TEST_CASE(repeated_parses_are_independent) {
    for (int i = 0; i < 3; ++i) {
        auto a = parse({"-q", "Q1", "-f", "", "--", "x@y.z"});
        BOOST_TEST(a.queue_id == "Q1");
        BOOST_TEST(a.sender == "");
        BOOST_TEST(a.recipients.size() == 1u);
    }
}

BOOST_AUTO_TEST_SUITE_END()
