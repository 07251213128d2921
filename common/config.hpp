// config: the o365relay.conf file (docs/design.md section "Configuration") read
// with inih into an immutable typed value. The keys, their kinds, defaults shown
// in the man page and inheritance are one table: config_schema.hpp.
//
// Contract: load_config() returns a fully validated Config or throws
// ConfigError whose message names the file, the line and the key ("FILE:LINE:
// [section] key: problem"). Every key has its default (the member initializers
// below); unknown sections and keys, bad values, a single-valued key set twice,
// duplicate accounts, missing required keys and a file without any [account
// NAME] section are errors. A repeated list key, or an indented continuation
// line, appends to the list. Accounts inherit [entra] and may override any of
// its keys; a delegated account does not inherit the app's credential
// (certificate_file, private_key_file, client_secret_file) nor its scope.
// load_config() reads regular files only (a directory or FIFO is refused, never
// waited on). Secret files are only named here; secret_file.hpp reads them.
// Config values are never modified after loading, so a shared_ptr<const Config>
// may be read from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "log_level.hpp"

namespace o365 {

// The enums' declaration order is the order of their choices in the schema
// table (config_schema.cpp); test_config_schema checks both agree.
enum class Flow { client_credentials, delegated };
enum class AssertionAlg { ps256, rs256 };
enum class UnknownSender { reject, tempfail, accept };
enum class NullSender { rewrite, reject };
enum class OnError { tempfail, accept, reject };
enum class DeliveryMethod { smtp, graph };

struct RelaySettings {
    std::string state_dir = "/var/lib/o365relay";
    std::string log = "syslog";  // syslog | stderr | file:/path
    LogLevel log_level = LogLevel::info;
    std::string user = "o365relay";  // service user (milter drops to it when root)
};

struct SmtpSettings {
    std::string host = "smtp.office365.com";
    int port = 587;
    std::string helo_name;  // empty: the host's FQDN
    std::string ca_file;    // empty: system trust store
    int connect_timeout = 30;
    int command_timeout = 60;
    int data_timeout = 180;
    int deadline = 900;
};

struct EntraSettings {
    std::string authority = "https://login.microsoftonline.com";
    std::string tenant;
    std::string client_id;
    std::string certificate_file;
    std::string private_key_file;
    std::string client_secret_file;
    std::string scope;  // empty: per flow default (see default_scope())
    std::string ca_file;
    int refresh_window = 600;
    int http_timeout = 30;
    AssertionAlg assertion_alg = AssertionAlg::ps256;

    // "{authority}/{tenant}/oauth2/v2.0/token"
    std::string token_endpoint() const;
    // "{authority}/{tenant}/oauth2/v2.0/devicecode"
    std::string devicecode_endpoint() const;
};

inline constexpr const char* kAppOnlyScope = "https://outlook.office365.com/.default";
inline constexpr const char* kDelegatedScope =
    "https://outlook.office.com/SMTP.Send offline_access";

inline constexpr const char* kGraphAppOnlyScope = "https://graph.microsoft.com/.default";
inline constexpr const char* kGraphDelegatedScope =
    "https://graph.microsoft.com/Mail.Send offline_access";

// [graph]: Microsoft Graph, for the accounts with method = graph
// (docs/design.md section "Graph delivery").
struct GraphSettings {
    std::string endpoint = "https://graph.microsoft.com";  // requests: <endpoint>/v1.0/users/...
    std::string scope;    // empty: per flow (kGraphAppOnlyScope, kGraphDelegatedScope)
    std::string ca_file;  // empty: system trust store
    int http_timeout = 60;
};

struct Account {
    std::string name;
    std::string mailbox;               // XOAUTH2 user=, lower-cased domain
    std::vector<std::string> senders;  // "user@domain" or "@domain", domain lower-cased
    Flow flow = Flow::client_credentials;
    DeliveryMethod method = DeliveryMethod::smtp;  // how the transport delivers
    // [entra] merged with the account's own keys; scope resolved. A delegated
    // account inherits no credential file and no scope from [entra].
    EntraSettings entra;
    std::vector<std::pair<std::string, std::string>> headers;  // add_header = Name: value

    bool uses_certificate() const { return !entra.certificate_file.empty(); }
};

struct MilterSettings {
    std::string socket = "unix:/var/spool/postfix/o365relay/milter.sock";
    OnError on_error = OnError::tempfail;
    std::string tag_header = "X-O365Relay-Account";
    int socket_mode = 0660;  // unix socket mode, so that Postfix (group) can connect
};

struct PolicySettings {
    UnknownSender unknown_sender = UnknownSender::reject;
    bool require_from_alignment = true;
    NullSender null_sender = NullSender::rewrite;
    std::string null_sender_account;
    long max_recipients = 500;
    long long max_message_size = 26214400;
    long messages_per_minute = 0;
    long recipients_per_day = 10000;
    std::vector<std::string> allowed_recipient_domains;  // lower-case
    std::vector<std::string> blocked_recipient_domains;  // lower-case
};

struct Config {
    std::string path;  // the file it was read from
    RelaySettings relay;
    SmtpSettings smtp;
    EntraSettings entra;  // the [entra] defaults as written
    GraphSettings graph;
    std::vector<Account> accounts;  // in file order
    MilterSettings milter;
    PolicySettings policy;

    // nullptr when no account has that name. O(log n).
    const Account* find_account(std::string_view name) const;

  private:
    friend class ConfigBuilder;
    std::map<std::string, std::size_t, std::less<>> by_name_;
};

// Reads and validates FILE. Throws ConfigError.
std::shared_ptr<const Config> load_config(const std::string& path);

// Same, from text (tests, fuzzing). `name` is used in error messages.
// Throws ConfigError.
std::shared_ptr<const Config> parse_config(const std::string& text, const std::string& name);

inline constexpr const char* kDefaultConfigPath = "/etc/o365relay/o365relay.conf";

}  // namespace o365
