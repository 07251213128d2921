// config_schema: the one table of o365relay.conf keys. Each row says where a
// key lives (section and the Config member it fills), what kind of value it
// takes and how that is checked, whether it is a list (repeated lines and
// indented continuation lines append) or a single value (set once), whether an
// [account NAME] section inherits it from [entra] and for which flows, whether
// it is a credential setting (part of the token cache's credential
// fingerprint), and the line the man page o365relay.conf(5) shows for it.
// config.cpp drives parsing, inheritance and the required-key checks from it;
// test_config_schema checks the man page and the typed defaults against it
// (docs/design.md section "Configuration").
//
// Adding a key: add a member to the settings struct in config.hpp (its
// initializer is the default), one row to the table in config_schema.cpp, and
// its entry to docs/man/o365relay.conf.5. Adding a section: a SectionKind, its
// name in kSections (config_schema.cpp) and where its struct lives
// (target_of in config_schema.cpp).
//
// Failure: store_value() returns the problem with a value as text (the caller
// adds file, line and key); nothing here throws except std::bad_alloc.
// Thread-safe: the table is immutable, the functions are pure.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"

namespace o365 {

// The sections of the file. Keys of [account NAME] are stored in the Account;
// keys of [entra] in Config::entra, or in Account::entra when an account
// section sets them.
enum class SectionKind { relay, smtp, entra, graph, account, milter, policy };

// The kinds of value, each with its own check.
enum class ValueType {
    text,           // any text, may be empty
    nonempty,       // any text but the empty one
    path,           // empty, or an absolute path
    required_path,  // an absolute path
    https_url,      // https://...
    integer,        // a whole number in [min, max]
    boolean,        // yes | no | true | false | on | off | 1 | 0
    choice,         // one of `choices` (case-sensitive)
    octal_mode,     // a file mode 0..0777 written in octal, such as 0660
    log_target,     // syslog | stderr | file:/absolute/path
    milter_socket,  // unix:/path | local:/path | inet:PORT@HOST | inet6:PORT@HOST
    address,        // a mailbox address (user@domain), domain lower-cased
    header_name,    // a header field name (printable, no colon or space)
    domain_list,    // domains or @domains, comma or space separated, lower-cased
    sender_list,    // addresses and @domains, comma or space separated
    header,         // "Name: value"
};

// How an account gets an [entra] key that its own section does not set.
enum class Inherit {
    no,                       // not an [entra] key
    every_flow,               // from [entra], whatever the account's flow
    client_credentials_only,  // from [entra] only when flow = client_credentials: the
                              // app's credential and scope; a delegated (public)
                              // client must present no credential (AADSTS700025)
};

// The value parsed from the text of one line, before it is stored.
struct ParsedValue {
    std::string text;                                // text kinds
    long long number = 0;                            // integer, boolean, choice index, mode
    std::vector<std::string> items;                  // lists
    std::pair<std::string, std::string> name_value;  // header
};

struct KeySpec;

// Where a key's value lives: type-erased accessors of one member of a settings
// struct, made by field<&Struct::member>() in config_schema.cpp.
struct Field {
    bool list = false;  // the member is a vector: repeated lines append
    void (*store)(void* object, const ParsedValue& v) = nullptr;  // assign or append
    void (*copy)(void* to, const void* from) = nullptr;           // inheritance
    std::string (*show)(const KeySpec& k, const void* object) = nullptr;
};

struct KeySpec {
    SectionKind section;
    std::string_view name;
    ValueType type;
    Field field;
    long long min = 0, max = 0;                      // integer
    std::span<const std::string_view> choices = {};  // choice, in the enum's declaration order
    Inherit inherit = Inherit::no;
    bool required = false;    // every account needs a non-empty value (after inheritance)
    bool credential = false;  // part of the credential fingerprint
    // The man page's entry line: "NAME[ HINT][ (SHOWN_DEFAULT)]". shown_default
    // is "default VALUE[: note]" or "default: note" for an empty value; empty for
    // a key without a default (required ones).
    std::string_view hint = {};
    std::string_view shown_default = {};

    bool is_list() const { return field.list; }
    // A credential setting that names a file: its stat is fingerprinted too.
    bool is_credential_file() const {
        return credential && (type == ValueType::path || type == ValueType::required_path);
    }
};

// Every key, in man page order (section by section).
std::span<const KeySpec> config_keys();

// "relay", "smtp", "entra", "graph", "account", "milter", "policy".
std::string_view section_name(SectionKind s);
// The kind of a section header's text ("account NAME" is SectionKind::account),
// nullopt for an unknown one.
std::optional<SectionKind> section_kind(std::string_view header);
// "relay, smtp, entra, graph, account NAME, milter, policy" for error messages.
std::string known_sections();

// The key NAME as written in a section of kind S: an [account NAME] section also
// accepts every [entra] key that accounts inherit. nullptr when unknown.
const KeySpec* find_key(SectionKind s, std::string_view name);

// Checks TEXT for key K and stores it: assigns a single value, appends to a list.
// ACCOUNT is the account whose section the line is in, nullptr outside account
// sections. Returns what is wrong with the text, nullopt when it was stored.
std::optional<std::string> store_value(const KeySpec& k, std::string_view text, Config& config,
                                       Account* account);

// The value of key K as the file would write it ("587", "yes", "0660", lists
// joined with ", "). CONFIG may be nullptr for account and [entra] keys when
// ACCOUNT is given; the [entra] key of an account is the account's own.
std::string value_text(const KeySpec& k, const Config* config, const Account* account);

// Fills every [entra] key that ACCOUNT's section did not set (SET_IN_SECTION
// names those it did) from FROM, as the keys' Inherit says for its flow.
void inherit_entra(Account& account, const EntraSettings& from,
                   const std::vector<std::string_view>& set_in_section);

// The man page's entry line for K, as plain text ("port (default 587)").
std::string man_line(const KeySpec& k);

// One credential setting of an account, for the token cache's fingerprint: a
// changed value (or, for a file, a changed file) invalidates cached tokens.
struct CredentialSetting {
    std::string key;    // "tenant", "certificate_file", ...
    std::string value;  // as value_text() shows it
    bool is_file = false;
};

// The account's credential settings (the table's credential keys), in table order.
std::vector<CredentialSetting> credential_settings(const Account& a);

}  // namespace o365
