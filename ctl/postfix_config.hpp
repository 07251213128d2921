// postfix_config: the Postfix configuration that follows from o365relay.conf
// (docs/design.md section "Operations"; docs/postfix-setup.md), and its
// comparison with what a running Postfix has.
//
// Contract: postfix_config() is a pure function of the config and the site
// (paths that o365relay.conf does not know): it returns the main.cf
// parameters, one master.cf pipe(8) entry per account and the sender
// transport map, in a stable order (file order of the accounts). Each account
// gets its own transport "o365-ACCOUNT": its maxproc is the only cap Postfix
// can put on one account's concurrent deliveries when the recipient limit is
// 1 (Exchange allows 3 SMTP connections per mailbox, Graph 4 requests), see
// kMethodLimits in postfix_config.cpp. compare() is pure too: given what
// `postconf -n`, `postconf -M` and `postmap -q` said, it lists every
// difference with the line to change and the command that changes it.
// Neither throws except postfix_milter_address() (ConfigError for a socket
// that Postfix cannot name). Stateless: thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"

namespace o365::ctl {

// What o365relay.conf does not say about the Postfix side.
struct PostfixSite {
    std::string config_dir = "/etc/postfix";             // postconf -c DIR
    std::string queue_directory = "/var/spool/postfix";  // for a relative milter socket
    std::string config_path = kDefaultConfigPath;        // o365relay.conf as pipe(8) passes it
    std::string transport_path = "/usr/sbin/o365relay-transport";
    // type:path of the sender transport map; empty: hash:<config_dir>/o365relay_sender_transport
    std::string map;
};

// How a running value must relate to the wanted one.
enum class ParamMatch {
    exact,        // the same value (whitespace normalised)
    list_member,  // the wanted value is one element of the running list (other milters stay)
};

struct MainParam {
    std::string name;
    std::string value;
    ParamMatch match = ParamMatch::exact;
};

struct MasterEntry {
    std::string service;  // o365-ACCOUNT
    std::string type = "unix";
    std::string private_ = "-";
    std::string unprivileged = "n";
    std::string chroot = "n";
    std::string wakeup = "-";
    std::string maxproc;
    std::string command;  // "pipe flags=q ... ${recipient}" (one line)

    std::string key() const { return service + "/" + type; }  // postconf -M name/type
    std::vector<std::string> fields() const;                  // whitespace-split, as postconf -M
    std::string one_line() const;                             // for postconf -M key='...'
    std::string folded() const;                               // for master.cf
};

struct MapLine {
    std::string key;    // sender, @domain or <>
    std::string value;  // o365-ACCOUNT:ACCOUNT
};

struct PostfixConfig {
    std::string config_dir;  // the site's: the fix commands name it (postconf -c DIR)
    std::vector<MainParam> main;
    std::vector<MasterEntry> master;
    std::string map;       // type:path, as in sender_dependent_default_transport_maps
    std::string map_file;  // the source file postmap reads (path without the type)
    std::vector<MapLine> map_lines;
};

// The transport name of an account: "o365-" + name.
std::string transport_name(const Account& a);

// [milter] socket in Postfix's syntax: unix:/Q/x -> unix:x when under the
// queue directory Q (resolved there inside and outside smtpd's chroot),
// inet:PORT@HOST -> inet:HOST:PORT. Throws ConfigError otherwise.
std::string postfix_milter_address(const std::string& socket, const std::string& queue_directory);

PostfixConfig postfix_config(const Config& config, const PostfixSite& site);

// The printed forms.
std::string format_main(const PostfixConfig& p);    // "name = value" lines
std::string format_master(const PostfixConfig& p);  // master.cf entries
std::string format_map(const PostfixConfig& p);     // map source lines
std::string format_all(const PostfixConfig& p);     // the three, with headers and how to apply

// What the running Postfix said.
struct RunningPostfix {
    std::map<std::string, std::string> main;                 // postconf -n
    std::map<std::string, std::vector<std::string>> master;  // "name/type" -> postconf -M fields
    // per wanted map key: the value postmap -q found, nullopt when not found
    std::map<std::string, std::optional<std::string>> map;
    std::string map_error;  // non-empty: the map could not be queried (why)
};

struct Difference {
    std::string what;  // what differs, with the running value
    std::string want;  // the line wanted
    std::string fix;   // the command that makes it so
};

std::vector<Difference> compare(const PostfixConfig& wanted, const RunningPostfix& running);

// Parsers of postconf's output (for the command and its tests).
std::map<std::string, std::string> parse_postconf_n(const std::string& out);
std::map<std::string, std::vector<std::string>> parse_postconf_m(const std::string& out);

}  // namespace o365::ctl
