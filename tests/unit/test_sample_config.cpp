// The sample conf/o365relay.conf, installed as /etc/o365relay/o365relay.conf,
// must stay a valid file, and the defaults it documents ("#key = value") must be
// the parser's real defaults. The test reads the sample from the source tree,
// parses it as shipped (where the only problem is that no account is set up
// yet), then again with every "#key = value" and "#[section]" line uncommented,
// and compares the documented defaults with a default-constructed Config.
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "config.hpp"
#include "error.hpp"

namespace {

std::string sample_text() {
    auto path = std::filesystem::path(O365_SOURCE_DIR) / "conf" / "o365relay.conf";
    std::ifstream in(path);
    BOOST_REQUIRE_MESSAGE(in, "cannot open " << path.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// "#key = value" and "#[section]" become live lines; prose ("# text") stays.
std::string uncomment_settings(const std::string& text) {
    static const std::regex setting(R"(^#([a-z_]+ *=.*|\[[a-z]+.*\].*)$)");
    std::istringstream in(text);
    std::ostringstream out;
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, setting)) line = m[1];
        out << line << "\n";
    }
    return out.str();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sample_config)

BOOST_AUTO_TEST_CASE(shipped_sample_parses_and_only_lacks_an_account) {
    // As installed, the file has no account: --check-config says so, and
    // nothing else is wrong with it.
    std::string err;
    try {
        o365::parse_config(sample_text(), "o365relay.conf");
    } catch (const o365::ConfigError& e) {
        err = e.what();
    }
    BOOST_TEST(err == "o365relay.conf: no [account NAME] section: o365relay relays nothing");

    auto cfg = o365::parse_config(sample_text() +
                                      "\n[entra]\ntenant = t\nclient_id = c\n"
                                      "client_secret_file = /etc/o365relay/secret\n"
                                      "[account a]\nmailbox = a@example.org\n",
                                  "o365relay.conf");
    BOOST_TEST(cfg->accounts.size() == 1u);
}

BOOST_AUTO_TEST_CASE(uncommented_sample_parses_with_documented_defaults) {
    std::string text = uncomment_settings(sample_text());
    BOOST_REQUIRE(text != sample_text());
    std::shared_ptr<const o365::Config> cfg;
    try {
        cfg = o365::parse_config(text, "uncommented");
    } catch (const o365::ConfigError& e) {
        BOOST_FAIL("uncommented sample does not parse: " << e.what());
    }
    const o365::Config defaults;
    const o365::Config* def = &defaults;

    BOOST_TEST(cfg->relay.state_dir == def->relay.state_dir);
    BOOST_TEST(cfg->relay.log == def->relay.log);
    BOOST_TEST((cfg->relay.log_level == def->relay.log_level));
    BOOST_TEST(cfg->relay.user == def->relay.user);

    BOOST_TEST(cfg->smtp.host == def->smtp.host);
    BOOST_TEST(cfg->smtp.port == def->smtp.port);
    BOOST_TEST(cfg->smtp.helo_name == def->smtp.helo_name);
    BOOST_TEST(cfg->smtp.ca_file == def->smtp.ca_file);
    BOOST_TEST(cfg->smtp.connect_timeout == def->smtp.connect_timeout);
    BOOST_TEST(cfg->smtp.command_timeout == def->smtp.command_timeout);
    BOOST_TEST(cfg->smtp.data_timeout == def->smtp.data_timeout);
    BOOST_TEST(cfg->smtp.deadline == def->smtp.deadline);

    // [entra] shows example values for tenant, client_id and the credential;
    // the rest are defaults.
    BOOST_TEST(cfg->entra.authority == def->entra.authority);
    BOOST_TEST(cfg->entra.client_secret_file == def->entra.client_secret_file);
    BOOST_TEST(cfg->entra.scope == def->entra.scope);
    BOOST_TEST(cfg->entra.ca_file == def->entra.ca_file);
    BOOST_TEST(cfg->entra.refresh_window == def->entra.refresh_window);
    BOOST_TEST(cfg->entra.http_timeout == def->entra.http_timeout);
    BOOST_TEST((cfg->entra.assertion_alg == def->entra.assertion_alg));

    BOOST_TEST(cfg->milter.socket == def->milter.socket);
    BOOST_TEST(cfg->milter.socket_mode == def->milter.socket_mode);
    BOOST_TEST((cfg->milter.on_error == def->milter.on_error));
    BOOST_TEST(cfg->milter.tag_header == def->milter.tag_header);

    BOOST_TEST((cfg->policy.unknown_sender == def->policy.unknown_sender));
    BOOST_TEST(cfg->policy.require_from_alignment == def->policy.require_from_alignment);
    BOOST_TEST((cfg->policy.null_sender == def->policy.null_sender));
    BOOST_TEST(cfg->policy.null_sender_account == def->policy.null_sender_account);
    BOOST_TEST(cfg->policy.max_recipients == def->policy.max_recipients);
    BOOST_TEST(cfg->policy.max_message_size == def->policy.max_message_size);
    BOOST_TEST(cfg->policy.messages_per_minute == def->policy.messages_per_minute);
    BOOST_TEST(cfg->policy.recipients_per_day == def->policy.recipients_per_day);
    BOOST_TEST(cfg->policy.allowed_recipient_domains.empty());
    BOOST_TEST(cfg->policy.blocked_recipient_domains.empty());

    // The example account, with its inherited [entra] settings.
    BOOST_REQUIRE_EQUAL(cfg->accounts.size(), 1u);
    const auto& a = cfg->accounts[0];
    BOOST_TEST(a.name == "noreply");
    BOOST_TEST(a.mailbox == "noreply@contoso.com");
    BOOST_TEST(a.senders.size() == 2u);
    BOOST_TEST((a.flow == o365::Flow::client_credentials));
    BOOST_TEST(a.headers.size() == 1u);
    BOOST_TEST(a.entra.tenant == "contoso.onmicrosoft.com");
    BOOST_TEST(a.entra.client_id == "11111111-1111-1111-1111-111111111111");
    BOOST_TEST(a.entra.certificate_file == "/etc/o365relay/app.crt");
    BOOST_TEST(a.entra.scope == o365::kAppOnlyScope);
}

BOOST_AUTO_TEST_SUITE_END()
