// The Postfix configuration generator (ctl/postfix_config.hpp) and its
// comparison with a running Postfix, driven by tables.
#include <boost/test/unit_test.hpp>

#include <functional>

#include "error.hpp"
#include "postfix_config.hpp"

using namespace o365;
using namespace o365::ctl;

namespace {

const char* kConfig = R"([smtp]
deadline = %DEADLINE%
[entra]
tenant = t
client_id = c
client_secret_file = /s
[milter]
socket = %SOCKET%
[account noreply]
mailbox = noreply@contoso.com
senders = noreply@contoso.com, @Apps.Contoso.com
[account alerts]
mailbox = alerts@contoso.com
senders = alerts@contoso.com, noreply@contoso.com
[policy]
null_sender = %NULL%
null_sender_account = %NULLACCOUNT%
)";

std::string replace(std::string s, const std::string& from, const std::string& to) {
    for (auto p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

std::shared_ptr<const Config> config(const std::string& socket = "inet:10025@127.0.0.1",
                                     const std::string& null = "rewrite",
                                     const std::string& null_account = "alerts",
                                     int deadline = 900) {
    std::string text = replace(kConfig, "%SOCKET%", socket);
    text = replace(text, "%NULL%", null);
    text = replace(text, "%NULLACCOUNT%", null_account);
    text = replace(text, "%DEADLINE%", std::to_string(deadline));
    return parse_config(text, "t.conf");
}

PostfixSite site() {
    PostfixSite s;
    s.config_dir = "/etc/postfix-test";
    s.config_path = "/etc/o365relay/test.conf";
    s.transport_path = "/opt/o365relay-transport";
    return s;
}

std::string param(const PostfixConfig& p, const std::string& name) {
    for (const auto& m : p.main)
        if (m.name == name) return m.value;
    return "(unset)";
}

// A running Postfix that has exactly what was wanted.
RunningPostfix running_as(const PostfixConfig& p) {
    RunningPostfix r;
    r.main = parse_postconf_n(format_main(p));
    std::string m;
    for (const auto& e : p.master)
        m += e.one_line() + "\n";
    r.master = parse_postconf_m(m);
    for (const auto& l : p.map_lines)
        r.map[l.key] = l.value;
    return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(milter_address_table) {
    struct Row {
        const char* socket;
        const char* queue_dir;
        const char* want;  // nullptr: ConfigError
    };
    const Row rows[] = {
        {"unix:/var/spool/postfix/o365relay/milter.sock", "/var/spool/postfix",
         "unix:o365relay/milter.sock"},
        {"unix:/var/spool/postfix/o365relay/milter.sock", "/var/spool/postfix/",
         "unix:o365relay/milter.sock"},
        {"unix:/srv/q/m.sock", "/srv/q", "unix:m.sock"},
        {"unix:/run/o365relay/milter.sock", "/var/spool/postfix",
         "unix:/run/o365relay/milter.sock"},
        {"unix:/var/spool/postfixx/m.sock", "/var/spool/postfix",
         "unix:/var/spool/postfixx/m.sock"},
        {"inet:10025@127.0.0.1", "/var/spool/postfix", "inet:127.0.0.1:10025"},
        {"inet:10025@::1", "/var/spool/postfix", "inet:[::1]:10025"},
        {"inet:10025@localhost", "/var/spool/postfix", "inet:localhost:10025"},
        {"inet:10025", "/var/spool/postfix", nullptr},
        {"local:/x", "/var/spool/postfix", nullptr},
    };
    for (const auto& row : rows) {
        BOOST_TEST_CONTEXT(row.socket << " in " << row.queue_dir) {
            if (row.want) {
                BOOST_TEST(postfix_milter_address(row.socket, row.queue_dir) == row.want);
            } else {
                BOOST_CHECK_THROW(postfix_milter_address(row.socket, row.queue_dir), ConfigError);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(main_cf_parameters) {
    auto p = postfix_config(*config("unix:/var/spool/postfix/o365relay/milter.sock"), site());
    struct Row {
        const char* name;
        const char* value;
    };
    const Row rows[] = {
        {"smtpd_milters", "unix:o365relay/milter.sock"},
        {"non_smtpd_milters", "unix:o365relay/milter.sock"},
        {"milter_default_action", "tempfail"},
        {"milter_mail_macros",
         "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}"},
        {"sender_dependent_default_transport_maps",
         "hash:/etc/postfix-test/o365relay_sender_transport"},
        {"o365-noreply_destination_recipient_limit", "1"},
        {"o365-noreply_destination_concurrency_limit", "3"},
        {"o365-noreply_time_limit", "1000s"},
        {"o365-alerts_destination_recipient_limit", "1"},
        {"o365-alerts_destination_concurrency_limit", "3"},
        {"o365-alerts_time_limit", "1000s"},
    };
    BOOST_TEST(p.main.size() == std::size(rows));
    for (const auto& row : rows)
        BOOST_TEST_CONTEXT(row.name) {
            BOOST_TEST(param(p, row.name) == row.value);
        }
}

BOOST_AUTO_TEST_CASE(time_limit_leaves_the_deadline_room) {
    // Postfix bounces a pipe(8) command killed at its time limit: the limit
    // must stay above [smtp] deadline.
    for (int deadline : {60, 900, 950, 3000}) {
        auto p = postfix_config(*config("inet:1@h", "rewrite", "alerts", deadline), site());
        std::string v = param(p, "o365-alerts_time_limit");
        BOOST_TEST_CONTEXT("deadline " << deadline) {
            BOOST_TEST(v.back() == 's');
            int limit = std::stoi(v);
            BOOST_TEST(limit >= 1000);
            BOOST_TEST(limit >= deadline + 100);
        }
    }
}

BOOST_AUTO_TEST_CASE(master_cf_one_entry_per_account) {
    auto p = postfix_config(*config(), site());
    BOOST_TEST_REQUIRE(p.master.size() == 2u);
    const std::string command =
        "pipe flags=q null_sender= user=o365relay argv=/opt/o365relay-transport -c "
        "/etc/o365relay/test.conf -f ${sender} -q ${queue_id} -n ${nexthop} -- ${recipient}";
    BOOST_TEST(p.master[0].key() == "o365-noreply/unix");
    BOOST_TEST(p.master[1].key() == "o365-alerts/unix");
    for (const auto& e : p.master) {
        BOOST_TEST(e.one_line() == e.service + " unix - n n - 3 " + command);
        // The folded form is the same entry for Postfix.
        auto again = parse_postconf_m(e.folded());
        BOOST_TEST_REQUIRE(again.count(e.key()) == 1u);
        BOOST_TEST(again[e.key()] == e.fields());
        BOOST_TEST(e.folded().find("\n  ") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(graph_account_limits) {
    // A Graph account: 4 concurrent requests per mailbox; one delivery carries
    // all the recipients of a message (To and Cc reach Graph intact).
    auto cfg = parse_config(
        replace(replace(replace(replace(kConfig, "%SOCKET%", "inet:1@h"), "%NULL%", "rewrite"),
                        "%NULLACCOUNT%", "alerts"),
                "%DEADLINE%", "900") +
            "[account graphy]\nmailbox = g@contoso.com\nsenders = "
            "g@contoso.com\nmethod = graph\n",
        "g.conf");
    auto p = postfix_config(*cfg, site());
    BOOST_TEST(param(p, "o365-graphy_destination_recipient_limit") == "100");
    BOOST_TEST(param(p, "o365-graphy_destination_concurrency_limit") == "4");
    BOOST_TEST(param(p, "o365-noreply_destination_recipient_limit") == "1");
    BOOST_TEST_REQUIRE(p.master.size() == 3u);
    BOOST_TEST(p.master[2].service == "o365-graphy");
    BOOST_TEST(p.master[2].maxproc == "4");
    BOOST_TEST(p.master[0].maxproc == "3");
}

BOOST_AUTO_TEST_CASE(sender_map_table) {
    struct Row {
        const char* null_sender;
        const char* null_account;
        std::vector<std::string> want;
    };
    const std::vector<std::string> senders = {
        "noreply@contoso.com o365-noreply:noreply",  // first account listing it wins
        "@apps.contoso.com o365-noreply:noreply",    // lower-cased
        "alerts@contoso.com o365-alerts:alerts",
    };
    auto with_null = senders;
    with_null.push_back("<> o365-alerts:alerts");
    const Row rows[] = {
        {"rewrite", "alerts", with_null},
        {"rewrite", "", senders},       // no account for <>: not routed
        {"reject", "alerts", senders},  // <> refused: not routed
    };
    for (const auto& row : rows) {
        BOOST_TEST_CONTEXT(row.null_sender << " " << row.null_account) {
            auto p = postfix_config(*config("inet:1@h", row.null_sender, row.null_account), site());
            std::vector<std::string> got;
            for (const auto& l : p.map_lines)
                got.push_back(l.key + " " + l.value);
            BOOST_TEST(got == row.want, boost::test_tools::per_element());
        }
    }
}

BOOST_AUTO_TEST_CASE(site_map_and_printed_sections) {
    PostfixSite s = site();
    s.map = "lmdb:/var/lib/postfix/senders";
    auto p = postfix_config(*config(), s);
    BOOST_TEST(p.map_file == "/var/lib/postfix/senders");
    BOOST_TEST(param(p, "sender_dependent_default_transport_maps") == s.map);
    std::string all = format_all(p);
    for (const std::string& part : {format_main(p), format_master(p), format_map(p)})
        BOOST_TEST(all.find(part) != std::string::npos);
    BOOST_TEST(all.find("postmap -c /etc/postfix-test lmdb:/var/lib/postfix/senders") !=
               std::string::npos);
    BOOST_TEST(format_map(p).find("@apps.contoso.com    o365-noreply:noreply\n") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(running_as_wanted_has_no_difference) {
    auto p = postfix_config(*config(), site());
    auto diffs = compare(p, running_as(p));
    for (const auto& d : diffs)
        BOOST_TEST_MESSAGE(d.what);
    BOOST_TEST(diffs.empty());
}

// Each drift of a running Postfix is reported once, with the line and command.
BOOST_AUTO_TEST_CASE(drift_table) {
    auto p = postfix_config(*config(), site());
    struct Row {
        const char* name;
        std::function<void(RunningPostfix&)> drift;
        const char* what;  // substring of the one difference
        const char* want;  // substring
        const char* fix;   // substring
    };
    const Row rows[] = {
        {"maxproc", [](RunningPostfix& r) { r.master["o365-alerts/unix"][6] = "5"; },
         "master.cf: o365-alerts/unix: maxproc is 5, want 3", "o365-alerts unix - n n - 3 pipe",
         "postconf -c /etc/postfix-test -M 'o365-alerts/unix=o365-alerts unix - n n - 3 pipe "},
        {"chroot", [](RunningPostfix& r) { r.master["o365-noreply/unix"][4] = "y"; },
         "chroot is y, want n", "o365-noreply unix - n n", "-M 'o365-noreply/unix="},
        {"command", [](RunningPostfix& r) { r.master["o365-noreply/unix"][8] = "flags=Rq"; },
         "command is 'pipe flags=Rq", "flags=q null_sender=", "-M 'o365-noreply/unix="},
        {"entry missing", [](RunningPostfix& r) { r.master.erase("o365-noreply/unix"); },
         "master.cf: no entry o365-noreply/unix", "o365-noreply unix", "-M 'o365-noreply/unix="},
        {"other milter", [](RunningPostfix& r) { r.main["smtpd_milters"] = "inet:127.0.0.1:9999"; },
         "smtpd_milters is 'inet:127.0.0.1:9999', without inet:127.0.0.1:10025",
         "smtpd_milters = inet:127.0.0.1:9999, inet:127.0.0.1:10025",
         "postconf -c /etc/postfix-test -e 'smtpd_milters = inet:127.0.0.1:9999, "
         "inet:127.0.0.1:10025'"},
        {"parameter unset", [](RunningPostfix& r) { r.main.erase("milter_default_action"); },
         "milter_default_action is not set", "milter_default_action = tempfail",
         "-e 'milter_default_action = tempfail'"},
        {"limit changed",
         [](RunningPostfix& r) { r.main["o365-noreply_destination_recipient_limit"] = "50"; },
         "o365-noreply_destination_recipient_limit is '50'",
         "o365-noreply_destination_recipient_limit = 1",
         "-e 'o365-noreply_destination_recipient_limit = 1'"},
        {"sender missing", [](RunningPostfix& r) { r.map["alerts@contoso.com"] = std::nullopt; },
         "map: alerts@contoso.com is not in the map", "alerts@contoso.com o365-alerts:alerts",
         "/etc/postfix-test/o365relay_sender_transport, then: postmap -c /etc/postfix-test "
         "hash:/etc/postfix-test/o365relay_sender_transport"},
        {"sender elsewhere", [](RunningPostfix& r) { r.map["<>"] = "o365:noreply"; },
         "map: <> goes to o365:noreply", "<> o365-alerts:alerts", "change it to '<> o365-alerts"},
        {"map unreadable", [](RunningPostfix& r) { r.map_error = "no such file"; },
         "sender transport map: no such file", "/etc/postfix-test/o365relay_sender_transport",
         "postmap -c /etc/postfix-test hash:"},
    };
    for (const auto& row : rows) {
        BOOST_TEST_CONTEXT(row.name) {
            RunningPostfix r = running_as(p);
            row.drift(r);
            auto diffs = compare(p, r);
            BOOST_TEST_REQUIRE(diffs.size() == 1u);
            BOOST_TEST(diffs[0].what.find(row.what) != std::string::npos, diffs[0].what);
            BOOST_TEST(diffs[0].want.find(row.want) != std::string::npos, diffs[0].want);
            BOOST_TEST(diffs[0].fix.find(row.fix) != std::string::npos, diffs[0].fix);
        }
    }
}

BOOST_AUTO_TEST_CASE(other_milters_and_whitespace_are_no_difference) {
    auto p = postfix_config(*config(), site());
    RunningPostfix r = running_as(p);
    r.main["smtpd_milters"] = "inet:127.0.0.1:9999,  inet:127.0.0.1:10025";
    r.main["non_smtpd_milters"] = "inet:127.0.0.1:10025 inet:127.0.0.1:9999";
    r.main["milter_mail_macros"] =
        "i  {auth_type} {auth_authen}\t{auth_author} {mail_addr} {mail_host} {mail_mailer}";
    BOOST_TEST(compare(p, r).empty());
}

BOOST_AUTO_TEST_CASE(fix_lines_are_quoted_for_sh) {
    PostfixSite s = site();
    s.config_path = "/etc/o365relay/it's.conf";
    auto p = postfix_config(*config(), s);
    RunningPostfix r = running_as(p);
    r.master.erase("o365-alerts/unix");
    auto diffs = compare(p, r);
    BOOST_TEST_REQUIRE(diffs.size() == 1u);
    BOOST_TEST(diffs[0].fix.find("it'\\''s.conf") != std::string::npos, diffs[0].fix);
}

BOOST_AUTO_TEST_CASE(postconf_output_parsers) {
    auto n = parse_postconf_n(
        "compatibility_level = 3.6\n"
        "empty =\n"
        "smtpd_milters = inet:127.0.0.1:1, unix:x  \n");
    BOOST_TEST(n.size() == 3u);
    BOOST_TEST(n["empty"] == "");
    BOOST_TEST(n["smtpd_milters"] == "inet:127.0.0.1:1, unix:x");
    // postconf -M, unfolded and folded (-f)
    auto m = parse_postconf_m(
        "smtp       inet  n       -       y       -       -       smtpd\n"
        "o365-a     unix  -       n       n       -       3       pipe\n"
        "    flags=q user=u argv=/t -c /c\n"
        "    -- ${recipient}\n");
    BOOST_TEST(m.size() == 2u);
    std::vector<std::string> want = {"o365-a",  "unix", "-",    "n",       "n",
                                     "-",       "3",    "pipe", "flags=q", "user=u",
                                     "argv=/t", "-c",   "/c",   "--",      "${recipient}"};
    BOOST_TEST(m["o365-a/unix"] == want, boost::test_tools::per_element());
}
