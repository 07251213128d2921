// The key table (config_schema) against the man page o365relay.conf(5), the
// typed defaults of config.hpp and the enums' declaration order; and the
// credential settings derived from it.
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "config.hpp"
#include "config_schema.hpp"
#include "error.hpp"

using namespace o365;

namespace {

std::string man_page_text() {
    const std::string path = std::string(O365_SOURCE_DIR) + "/docs/man/o365relay.conf.5";
    std::ifstream in(path);
    BOOST_REQUIRE_MESSAGE(in, "cannot open " << path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The words of a roff macro line: `.BR a " b"` -> {"a", " b"}.
std::vector<std::string> roff_args(const std::string& rest) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < rest.size()) {
        while (i < rest.size() && rest[i] == ' ')
            ++i;
        if (i >= rest.size()) break;
        std::string w;
        if (rest[i] == '"') {
            for (++i; i < rest.size() && rest[i] != '"'; ++i)
                w += rest[i];
            ++i;
        } else {
            for (; i < rest.size() && rest[i] != ' '; ++i)
                w += rest[i];
        }
        out.push_back(w);
    }
    return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
        s.replace(p, from.size(), to);
}

// A roff line as the reader sees it: font macros and escapes gone.
std::string roff_plain(const std::string& line) {
    std::string out;
    if (line.rfind(".B ", 0) == 0 || line.rfind(".I ", 0) == 0) {
        for (const auto& w : roff_args(line.substr(3)))
            out += (out.empty() ? "" : " ") + w;
    } else if (line.size() > 3 && line[0] == '.' && line[3] == ' ') {  // .BR .BI .IR ...
        for (const auto& w : roff_args(line.substr(4)))
            out += w;
    } else {
        out = line;
    }
    replace_all(out, "\\-", "-");
    replace_all(out, "\\&", "");
    replace_all(out, "\\c", "");
    return out;
}

// section name -> the entry lines (after .TP or .TQ) of its "SECTION [..]".
std::map<std::string, std::multiset<std::string>> man_entries() {
    std::map<std::string, std::multiset<std::string>> out;
    std::istringstream in(man_page_text());
    std::string line, section;
    bool entry_next = false;
    while (std::getline(in, line)) {
        if (line.rfind(".SH", 0) == 0) {
            section.clear();
            auto open = line.find("SECTION [");
            if (open != std::string::npos) {
                section = line.substr(open + 9, line.find(']', open) - open - 9);
                if (section.rfind("account ", 0) == 0) section = "account";
            }
            entry_next = false;
            continue;
        }
        if (section.empty()) continue;
        if (entry_next) {
            out[section].insert(roff_plain(line));
            entry_next = false;
        }
        if (line == ".TP" || line == ".TQ") entry_next = true;
    }
    return out;
}

// The value that "default VALUE[: note]" or "default: note" shows.
std::string shown_value(std::string_view shown) {
    if (shown.rfind("default:", 0) == 0) return "";
    std::string v(shown.substr(8));  // after "default "
    auto note = v.find(": ");
    return note == std::string::npos ? v : v.substr(0, note);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config_schema)

BOOST_AUTO_TEST_CASE(man_page_documents_exactly_the_table) {
    auto man = man_entries();
    std::map<std::string, std::multiset<std::string>> table;
    for (const auto& k : config_keys())
        table[std::string(section_name(k.section))].insert(man_line(k));
    BOOST_TEST(man.size() == 7u);  // seven SECTION headings were found
    for (const auto& [section, lines] : table) {
        BOOST_TEST_CONTEXT("[" << section << "]") {
            for (const auto& l : lines)
                BOOST_TEST(man[section].count(l) == 1u,
                           "in the table, not in the man page (or "
                           "its default differs): '"
                               << l << "'");
        }
    }
    for (const auto& [section, lines] : man) {
        BOOST_TEST_CONTEXT("[" << section << "]") {
            for (const auto& l : lines)
                BOOST_TEST(table[section].count(l) == 1u,
                           "in the man page, not in the table: '" << l << "'");
        }
    }
}

BOOST_AUTO_TEST_CASE(shown_defaults_are_the_typed_defaults) {
    const Config config;
    const Account account;
    for (const auto& k : config_keys()) {
        BOOST_TEST_CONTEXT(section_name(k.section) << " " << k.name) {
            std::string actual =
                value_text(k, &config, k.section == SectionKind::account ? &account : nullptr);
            if (k.shown_default.empty()) {
                BOOST_TEST((k.required || k.is_list()),
                           "only a required or list key shows no default");
                BOOST_TEST(actual == "");
            } else {
                BOOST_TEST(k.shown_default.rfind("default", 0) == 0u);
                BOOST_TEST(actual == shown_value(k.shown_default));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(every_value_is_read_back_as_written) {
    // Choices in the enums' declaration order, booleans, modes and ranges: each
    // value stored and shown again is the same text.
    for (const auto& k : config_keys()) {
        std::vector<std::string> values(k.choices.begin(), k.choices.end());
        if (k.type == ValueType::boolean) values = {"yes", "no"};
        if (k.type == ValueType::octal_mode) values = {"0600", "0660", "0777"};
        if (k.type == ValueType::integer) values = {std::to_string(k.min), std::to_string(k.max)};
        for (const auto& v : values) {
            Config c;
            Account a;
            BOOST_TEST_CONTEXT(k.name << " = " << v) {
                auto problem =
                    store_value(k, v, c, k.section == SectionKind::account ? &a : nullptr);
                BOOST_TEST(!problem.has_value(), problem.value_or(""));
                BOOST_TEST(value_text(k, &c, k.section == SectionKind::account ? &a : nullptr) ==
                           v);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(values_out_of_their_kind_are_refused) {
    for (const auto& k : config_keys()) {
        std::vector<std::string> bad;
        if (k.type == ValueType::integer)
            bad = {std::to_string(k.min - 1), std::to_string(k.max + 1), "12x", ""};
        if (k.type == ValueType::choice) bad = {std::string(k.choices[0]) + "x", ""};
        if (k.type == ValueType::boolean) bad = {"maybe"};
        if (k.type == ValueType::path || k.type == ValueType::required_path)
            bad = {"relative/file"};
        for (const auto& v : bad) {
            Config c;
            Account a;
            BOOST_TEST_CONTEXT(k.name << " = '" << v << "'") {
                BOOST_TEST(store_value(k, v, c, &a).has_value());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(keys_are_unique_and_entra_keys_may_be_overridden) {
    std::set<std::pair<SectionKind, std::string_view>> seen;
    for (const auto& k : config_keys()) {
        BOOST_TEST(seen.insert({k.section, k.name}).second, "twice: " << k.name);
        BOOST_TEST(find_key(k.section, k.name) == &k);
        if (k.section == SectionKind::entra) {
            BOOST_TEST((k.inherit != Inherit::no), k.name);
            BOOST_TEST(find_key(SectionKind::account, k.name) == &k);
        } else {
            BOOST_TEST((k.inherit == Inherit::no), k.name);
        }
        // An account section takes its own keys and the [entra] ones only.
        const KeySpec* in_account = find_key(SectionKind::account, k.name);
        bool account_or_entra = !in_account || in_account->section == SectionKind::account ||
                                in_account->section == SectionKind::entra;
        BOOST_TEST(account_or_entra, k.name);
    }
    BOOST_TEST(find_key(SectionKind::smtp, "tenant") == nullptr);
    BOOST_TEST(find_key(SectionKind::account, "port") == nullptr);
}

BOOST_AUTO_TEST_CASE(sections_by_name) {
    BOOST_TEST((section_kind("smtp") == SectionKind::smtp));
    BOOST_TEST((section_kind("account noreply") == SectionKind::account));
    BOOST_TEST(!section_kind("account").has_value());
    BOOST_TEST(!section_kind("smtpd").has_value());
    BOOST_TEST(known_sections() == "relay, smtp, entra, graph, account NAME, milter, policy");
}

BOOST_AUTO_TEST_CASE(credential_settings_follow_the_account) {
    auto cfg = parse_config(R"([entra]
tenant = t.example
client_id = cid
certificate_file = /etc/o365relay/app.crt
private_key_file = /etc/o365relay/app.key

[account app]
mailbox = app@x.org

[account user]
mailbox = user@x.org
flow = delegated
)",
                            "t.conf");
    auto as_map = [](const Account& a) {
        std::map<std::string, CredentialSetting> m;
        for (auto& s : credential_settings(a))
            m[s.key] = s;
        return m;
    };
    auto app = as_map(*cfg->find_account("app"));
    auto user = as_map(*cfg->find_account("user"));
    const std::set<std::string> keys = {"authority",
                                        "tenant",
                                        "client_id",
                                        "certificate_file",
                                        "private_key_file",
                                        "client_secret_file",
                                        "assertion_alg",
                                        "scope",
                                        "flow"};
    std::set<std::string> got;
    for (const auto& [k, s] : app)
        got.insert(k);
    BOOST_TEST(got == keys, boost::test_tools::per_element());
    BOOST_TEST(app["certificate_file"].value == "/etc/o365relay/app.crt");
    BOOST_TEST(app["certificate_file"].is_file);
    BOOST_TEST(app["private_key_file"].is_file);
    BOOST_TEST(app["client_secret_file"].is_file);
    BOOST_TEST(!app["tenant"].is_file);
    BOOST_TEST(app["tenant"].value == "t.example");
    BOOST_TEST(app["flow"].value == "client_credentials");
    BOOST_TEST(app["scope"].value == kAppOnlyScope);
    BOOST_TEST(app["assertion_alg"].value == "PS256");
    BOOST_TEST(user["flow"].value == "delegated");
    BOOST_TEST(user["certificate_file"].value == "");  // not inherited
    BOOST_TEST(user["scope"].value == kDelegatedScope);
    BOOST_TEST(user["client_id"].value == "cid");
}

BOOST_AUTO_TEST_SUITE_END()
