// [entra] cloud: each preset resolves to the endpoints docs/clouds.md
// documents; explicit keys win over the preset wherever they are written; an
// unknown cloud is an error naming the line. [entra] proxy / [graph] proxy:
// accepted and refused forms, inheritance.
#include <boost/test/unit_test.hpp>
#include <set>
#include <string>

#include "clouds.hpp"
#include "config.hpp"
#include "config_schema.hpp"
#include "error.hpp"
#include "token_audience.hpp"

using namespace o365;

namespace {

// Two accounts: an app (client credentials) and a user (delegated).
std::string config_with(const std::string& entra, const std::string& rest = "") {
    return "[entra]\n" + entra +
           "tenant = contoso.onmicrosoft.com\n"
           "client_id = 11111111-2222-3333-4444-555555555555\n"
           "client_secret_file = /etc/o365relay/secret\n" +
           rest +
           "\n[account app]\nmailbox = app@contoso.com\n"
           "\n[account user]\nmailbox = user@contoso.com\nflow = delegated\n";
}

std::string error_of(const std::string& text) {
    try {
        parse_config(text, "test.conf");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

// What docs/clouds.md documents for each cloud.
struct Expected {
    std::string name, authority, smtp_host, smtp_app, smtp_user, graph, graph_app, graph_user;
};
const Expected kExpected[] = {
    {"global", "https://login.microsoftonline.com", "smtp.office365.com",
     "https://outlook.office365.com/.default",
     "https://outlook.office.com/SMTP.Send offline_access", "https://graph.microsoft.com",
     "https://graph.microsoft.com/.default",
     "https://graph.microsoft.com/Mail.Send offline_access"},
    {"usgov", "https://login.microsoftonline.us", "smtp.office365.us",
     "https://outlook.office365.us/.default",
     "https://outlook.office365.us/SMTP.Send offline_access", "https://graph.microsoft.us",
     "https://graph.microsoft.us/.default", "https://graph.microsoft.us/Mail.Send offline_access"},
    {"usgov-dod", "https://login.microsoftonline.us", "outlook-dod.office365.us",
     "https://outlook.office365.us/.default",
     "https://outlook.office365.us/SMTP.Send offline_access", "https://dod-graph.microsoft.us",
     "https://dod-graph.microsoft.us/.default",
     "https://dod-graph.microsoft.us/Mail.Send offline_access"},
    {"china", "https://login.partner.microsoftonline.cn", "partner.outlook.cn",
     "https://partner.outlook.cn/.default", "https://partner.outlook.cn/SMTP.Send offline_access",
     "https://microsoftgraph.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/.default",
     "https://microsoftgraph.chinacloudapi.cn/Mail.Send offline_access"},
};

}  // namespace

BOOST_AUTO_TEST_SUITE(clouds)

BOOST_AUTO_TEST_CASE(one_preset_per_cloud_in_declaration_order) {
    auto presets = cloud_presets();
    auto names = cloud_names();
    BOOST_TEST(presets.size() == 4u);
    BOOST_TEST(names.size() == presets.size());
    std::set<std::string_view> seen;
    for (std::size_t i = 0; i < presets.size(); ++i) {
        BOOST_TEST(static_cast<std::size_t>(presets[i].cloud) == i);
        BOOST_TEST(names[i] == presets[i].name);
        BOOST_TEST(&cloud_preset(presets[i].cloud) == &presets[i]);
        BOOST_TEST(seen.insert(presets[i].name).second);
    }
    // The global cloud's scopes are the constants the rest of the code names.
    const CloudPreset& g = cloud_preset(Cloud::global);
    BOOST_TEST(g.smtp_app_scope == kAppOnlyScope);
    BOOST_TEST(g.smtp_delegated_scope == kDelegatedScope);
    BOOST_TEST(g.graph_app_scope == kGraphAppOnlyScope);
    BOOST_TEST(g.graph_delegated_scope == kGraphDelegatedScope);
}

BOOST_AUTO_TEST_CASE(each_preset_resolves_to_the_documented_endpoints) {
    for (const auto& x : kExpected) {
        BOOST_TEST_CONTEXT("cloud = " << x.name) {
            auto c = parse_config(config_with("cloud = " + x.name + "\n"), "test.conf");
            const Account* app = c->find_account("app");
            const Account* user = c->find_account("user");
            BOOST_REQUIRE(app);
            BOOST_REQUIRE(user);
            BOOST_TEST(cloud_preset(c->entra.cloud).name == x.name);
            BOOST_TEST(c->entra.authority == x.authority);
            BOOST_TEST(app->entra.authority == x.authority);
            BOOST_TEST(user->entra.authority == x.authority);
            BOOST_TEST(app->entra.token_endpoint() ==
                       x.authority + "/contoso.onmicrosoft.com/oauth2/v2.0/token");
            BOOST_TEST(c->smtp.host == x.smtp_host);
            BOOST_TEST(app->entra.scope == x.smtp_app);
            BOOST_TEST(user->entra.scope == x.smtp_user);
            BOOST_TEST(c->graph.endpoint == x.graph);
            BOOST_TEST(graph_scope(*app, c->graph) == x.graph_app);
            BOOST_TEST(graph_scope(*user, c->graph) == x.graph_user);
            BOOST_TEST(account_for_audience(*app, c->graph, Audience::graph).entra.scope ==
                       x.graph_app);
            BOOST_TEST((app->entra.cloud == c->entra.cloud));
            BOOST_TEST((user->entra.cloud == c->entra.cloud));
        }
    }
}

BOOST_AUTO_TEST_CASE(without_cloud_the_global_values_apply) {
    auto c = parse_config(config_with(""), "test.conf");
    BOOST_TEST((c->entra.cloud == Cloud::global));
    BOOST_TEST(c->entra.authority == "https://login.microsoftonline.com");
    BOOST_TEST(c->smtp.host == "smtp.office365.com");
    BOOST_TEST(c->graph.endpoint == "https://graph.microsoft.com");
}

BOOST_AUTO_TEST_CASE(explicit_keys_override_the_preset_wherever_written) {
    // Explicit keys before and after the cloud line, in their own sections.
    const std::string text =
        "[smtp]\nhost = relay.example.net\n"
        "[graph]\nendpoint = https://graph.example.net\n"
        "scope = https://graph.example.net/.default\n" +
        config_with(
            "authority = https://login.example.net\n"
            "scope = https://outlook.example.net/.default\n"
            "cloud = china\n");
    auto c = parse_config(text, "test.conf");
    const Account* app = c->find_account("app");
    const Account* user = c->find_account("user");
    BOOST_TEST((c->entra.cloud == Cloud::china));
    BOOST_TEST(c->entra.authority == "https://login.example.net");
    BOOST_TEST(app->entra.authority == "https://login.example.net");
    BOOST_TEST(c->smtp.host == "relay.example.net");
    BOOST_TEST(c->graph.endpoint == "https://graph.example.net");
    BOOST_TEST(app->entra.scope == "https://outlook.example.net/.default");
    // A delegated account does not inherit [entra] scope: its own cloud default.
    BOOST_TEST(user->entra.scope == "https://partner.outlook.cn/SMTP.Send offline_access");
    BOOST_TEST(graph_scope(*app, c->graph) == "https://graph.example.net/.default");
    BOOST_TEST(graph_scope(*user, c->graph) == "https://graph.example.net/.default");
}

BOOST_AUTO_TEST_CASE(an_account_may_override_authority_and_scope_of_the_cloud) {
    auto c = parse_config(config_with("cloud = usgov\n") +
                              "authority = https://login.example.net\n"
                              "scope = https://outlook.example.net/SMTP.Send offline_access\n",
                          "test.conf");
    const Account* user = c->find_account("user");
    const Account* app = c->find_account("app");
    BOOST_TEST(user->entra.authority == "https://login.example.net");
    BOOST_TEST(user->entra.scope == "https://outlook.example.net/SMTP.Send offline_access");
    BOOST_TEST(app->entra.authority == "https://login.microsoftonline.us");
    BOOST_TEST(c->smtp.host == "smtp.office365.us");
}

BOOST_AUTO_TEST_CASE(the_cloud_is_part_of_the_credential_fingerprint) {
    auto g = parse_config(config_with(""), "test.conf");
    auto us = parse_config(config_with("cloud = usgov\n"), "test.conf");
    auto fp = [](const Account& a) {
        std::string s;
        for (const auto& c : credential_settings(a))
            s += c.key + "=" + c.value + "\n";
        return s;
    };
    BOOST_TEST(fp(*g->find_account("app")) != fp(*us->find_account("app")));
    BOOST_TEST(fp(*g->find_account("user")) != fp(*us->find_account("user")));
}

BOOST_AUTO_TEST_CASE(an_unknown_cloud_is_an_error_naming_the_line) {
    std::string e = error_of(config_with("cloud = mars\n"));
    BOOST_TEST(e ==
               "test.conf:2: [entra] cloud: 'mars' is not one of: global | usgov | "
               "usgov-dod | china");
    BOOST_TEST(error_of(config_with("cloud = USGov\n")).find("test.conf:2:") == 0u);
}

BOOST_AUTO_TEST_CASE(the_cloud_is_set_for_all_accounts_only) {
    std::string e = error_of(config_with("") + "cloud = usgov\n");
    BOOST_TEST(e.find("[account user] cloud: unknown key") != std::string::npos, e);
    BOOST_TEST(e.find("test.conf:") == 0u);
    BOOST_TEST(error_of("[smtp]\ncloud = usgov\n" + config_with("")).find("test.conf:2:") == 0u);
    BOOST_TEST(error_of(config_with("cloud = usgov\ncloud = china\n"))
                   .find("test.conf:3: [entra] cloud: set twice (first at line 2)") == 0u);
}

BOOST_AUTO_TEST_CASE(proxies_are_read_and_inherited) {
    auto c = parse_config(config_with("proxy = http://proxy.example.net:3128\n",
                                      "[graph]\nproxy = https://gw.example.net:8443/\n") +
                              "proxy = http://10.0.0.1:8080\n",
                          "test.conf");
    BOOST_TEST(c->entra.proxy == "http://proxy.example.net:3128");
    BOOST_TEST(c->find_account("app")->entra.proxy == "http://proxy.example.net:3128");
    BOOST_TEST(c->find_account("user")->entra.proxy == "http://10.0.0.1:8080");
    BOOST_TEST(c->graph.proxy == "https://gw.example.net:8443/");
    auto none = parse_config(config_with(""), "test.conf");
    BOOST_TEST(none->entra.proxy == "");
    BOOST_TEST(none->graph.proxy == "");
    BOOST_TEST(none->find_account("app")->entra.proxy == "");
}

BOOST_AUTO_TEST_CASE(proxies_of_other_forms_are_refused_naming_the_line) {
    for (const char* bad :
         {"proxy.example.net:3128", "socks5://proxy.example.net:1080", "http://proxy.example.net",
          "http://:3128", "http://proxy.example.net:0", "http://proxy.example.net:65536",
          "http://proxy.example.net:31x", "http://proxy.example.net:3128/path",
          "http://user:secret@proxy.example.net:3128"}) {
        BOOST_TEST_CONTEXT("proxy = " << bad) {
            std::string e = error_of(config_with(std::string("proxy = ") + bad + "\n"));
            BOOST_TEST(e.find("test.conf:2: [entra] proxy: ") == 0u, e);
            e = error_of("[graph]\nproxy = " + std::string(bad) + "\n" + config_with(""));
            BOOST_TEST(e.find("test.conf:2: [graph] proxy: ") == 0u, e);
            BOOST_TEST(e.find("secret") == std::string::npos, "a password is never echoed");
        }
    }
    // The message says why, without the password.
    std::string e = error_of(config_with("proxy = http://u:secret@h.example.net:3128\n"));
    BOOST_TEST(e.find("user and password in the proxy URL are not supported") != std::string::npos);
    BOOST_TEST(e.find("secret") == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
