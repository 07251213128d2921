// token_audience: the Graph token is a second cache entry of the account, with
// the Graph scope; the account's method picks the audience. Parsed from real
// config text so that the [graph] section and `method` are covered too.
#include <boost/test/unit_test.hpp>
#include <string>

#include "config.hpp"
#include "error.hpp"
#include "token_audience.hpp"
#include "token_cache.hpp"

using namespace o365;

namespace {

std::string conf(const std::string& graph_section, const std::string& account_extra) {
    return "[entra]\n"
           "tenant = contoso.onmicrosoft.com\n"
           "client_id = 11111111-2222-3333-4444-555555555555\n"
           "client_secret_file = /etc/o365relay/secret\n" +
           graph_section +
           "[account app]\n"
           "mailbox = app@contoso.com\n" +
           account_extra +
           "[account user]\n"
           "mailbox = user@contoso.com\n"
           "flow = delegated\n"
           "method = graph\n";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(token_audience)

BOOST_AUTO_TEST_CASE(graph_defaults_and_method) {
    auto c = parse_config(conf("", ""), "t.conf");
    BOOST_TEST(c->graph.endpoint == "https://graph.microsoft.com");
    BOOST_TEST(c->graph.scope.empty());
    BOOST_TEST(c->graph.ca_file.empty());
    BOOST_TEST(c->graph.http_timeout == 60);
    BOOST_TEST((c->find_account("app")->method == DeliveryMethod::smtp));
    BOOST_TEST((c->find_account("user")->method == DeliveryMethod::graph));
    BOOST_TEST((audience_of(*c->find_account("app")) == Audience::smtp));
    BOOST_TEST((audience_of(*c->find_account("user")) == Audience::graph));
}

BOOST_AUTO_TEST_CASE(graph_section_is_read) {
    auto c = parse_config(conf("[graph]\nendpoint = https://graph.microsoft.us\n"
                               "scope = https://graph.microsoft.us/.default\n"
                               "ca_file = /etc/ssl/g.pem\nhttp_timeout = 20\n",
                               "method = graph\n"),
                          "t.conf");
    BOOST_TEST(c->graph.endpoint == "https://graph.microsoft.us");
    BOOST_TEST(c->graph.ca_file == "/etc/ssl/g.pem");
    BOOST_TEST(c->graph.http_timeout == 20);
    const Account& app = *c->find_account("app");
    BOOST_TEST(graph_scope(app, c->graph) == "https://graph.microsoft.us/.default");
}

BOOST_AUTO_TEST_CASE(bad_values_are_config_errors) {
    const char* bad[] = {"method = imap\n", "method = Graph\n"};
    for (const char* b : bad) {
        BOOST_TEST_CONTEXT(b) {
            BOOST_CHECK_THROW(parse_config(conf("", b), "t.conf"), ConfigError);
        }
    }
    BOOST_CHECK_THROW(parse_config(conf("[graph]\nendpoint = http://x\n", ""), "t.conf"),
                      ConfigError);
    BOOST_CHECK_THROW(parse_config(conf("[graph]\nhttp_timeout = 0\n", ""), "t.conf"), ConfigError);
    // [graph] keys belong to [graph], not to an account section.
    BOOST_CHECK_THROW(parse_config(conf("", "endpoint = https://x\n"), "t.conf"), ConfigError);
}

BOOST_AUTO_TEST_CASE(smtp_audience_is_the_account_itself) {
    auto c = parse_config(conf("", ""), "t.conf");
    const Account& app = *c->find_account("app");
    Account a = account_for_audience(app, c->graph, Audience::smtp);
    BOOST_TEST(a.name == "app");
    BOOST_TEST(a.entra.scope == app.entra.scope);
    BOOST_TEST(a.entra.scope == kAppOnlyScope);
}

struct ScopeCase {
    const char* graph_section;
    const char* account;
    const char* scope;
};

BOOST_AUTO_TEST_CASE(graph_audience_scope_by_flow_and_setting) {
    const ScopeCase cases[] = {
        {"", "app", "https://graph.microsoft.com/.default"},
        {"", "user", "https://graph.microsoft.com/Mail.Send offline_access"},
        {"[graph]\nscope = https://graph.microsoft.us/.default\n", "app",
         "https://graph.microsoft.us/.default"},
        {"[graph]\nscope = https://graph.microsoft.us/Mail.Send offline_access\n", "user",
         "https://graph.microsoft.us/Mail.Send offline_access"},
    };
    for (const auto& k : cases) {
        BOOST_TEST_CONTEXT(k.graph_section << k.account) {
            auto c = parse_config(conf(k.graph_section, ""), "t.conf");
            const Account& acc = *c->find_account(k.account);
            Account g = account_for_audience(acc, c->graph, Audience::graph);
            BOOST_TEST(g.name == std::string(k.account) + "+graph");
            BOOST_TEST(g.entra.scope == k.scope);
            // Everything else is the account's.
            BOOST_TEST(g.mailbox == acc.mailbox);
            BOOST_TEST(g.entra.client_id == acc.entra.client_id);
            BOOST_TEST((g.flow == acc.flow));
        }
    }
}

BOOST_AUTO_TEST_CASE(the_two_entries_never_mix) {
    auto c = parse_config(conf("", ""), "t.conf");
    const Account& app = *c->find_account("app");
    Account s = account_for_audience(app, c->graph, Audience::smtp);
    Account g = account_for_audience(app, c->graph, Audience::graph);
    TokenCache cache("/var/lib/o365relay", nullptr);
    BOOST_TEST(cache.entry_path(s.name) == "/var/lib/o365relay/tokens/app.json");
    BOOST_TEST(cache.entry_path(g.name) == "/var/lib/o365relay/tokens/app+graph.json");
    // The scope is a credential setting: the fingerprints differ.
    BOOST_TEST(TokenCache::fingerprint(s) != TokenCache::fingerprint(g));
}

BOOST_AUTO_TEST_SUITE_END()
