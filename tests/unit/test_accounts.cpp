// The sender -> account resolver (table-driven).
#include <boost/test/unit_test.hpp>

#include "accounts.hpp"

using namespace o365;

BOOST_AUTO_TEST_CASE(resolver_table) {
    auto cfg = parse_config(R"([entra]
tenant = t
client_id = c
client_secret_file = /s
[account apps]
mailbox = apps@contoso.com
senders = @apps.contoso.com, @Contoso.com
[account noreply]
mailbox = noreply@contoso.com
senders = NoReply@contoso.com, alerts@apps.contoso.com
[account first]
mailbox = first@x.org
senders = dup@x.org
[account second]
mailbox = second@x.org
senders = dup@x.org, "john doe"@x.org
)",
                            "r.conf");
    Resolver r(cfg);
    struct Row {
        const char* sender;
        const char* account;  // nullptr: no account
    };
    const Row rows[] = {
        {"noreply@contoso.com", "noreply"},
        {"NOREPLY@CONTOSO.COM", "noreply"},      // exact beats @contoso.com, any case
        {"<noreply@contoso.com>", "noreply"},    // angle brackets
        {"other@contoso.com", "apps"},           // domain entry
        {"other@CONTOSO.com", "apps"},           // case-insensitive domain
        {"alerts@apps.contoso.com", "noreply"},  // exact beats @apps.contoso.com
        {"x@apps.contoso.com", "apps"},
        {"x@sub.apps.contoso.com", nullptr},  // no subdomain matching
        {"dup@x.org", "first"},               // first in file wins
        {"\"john doe\"@x.org", "second"},     // quoted local part
        {"someone@example.org", nullptr},
        {"", nullptr},
        {"not-an-address", nullptr},
        {"a@b@c", nullptr},
        {"bad\r\n@contoso.com", nullptr},
    };
    for (const auto& row : rows) {
        const Account* a = r.resolve(row.sender);
        BOOST_TEST_CONTEXT(row.sender) {
            if (row.account == nullptr) {
                BOOST_TEST(a == nullptr);
            } else {
                BOOST_REQUIRE(a != nullptr);
                BOOST_TEST(a->name == row.account);
            }
        }
    }
    const Account* noreply = cfg->find_account("noreply");
    BOOST_TEST(r.may_send_as(*noreply, "noreply@Contoso.COM"));
    BOOST_TEST(r.may_send_as(*noreply, "alerts@apps.contoso.com"));
    BOOST_TEST(!r.may_send_as(*noreply, "x@apps.contoso.com"));
    BOOST_TEST(r.may_send_as(*cfg->find_account("apps"), "y@CONTOSO.com"));
    BOOST_TEST(!r.may_send_as(*noreply, ""));
}
