#include "config_schema.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <type_traits>

#include "address.hpp"
#include "text.hpp"

namespace o365 {

namespace {

// ---- Fields: one member of a settings struct, behind function pointers -------

template <class M>
struct MemberTraits;
template <class S, class T>
struct MemberTraits<T S::*> {
    using Owner = S;
    using Type = T;
};

template <class T>
inline constexpr bool kIsStringList = std::is_same_v<T, std::vector<std::string>>;
template <class T>
inline constexpr bool kIsHeaderList =
    std::is_same_v<T, std::vector<std::pair<std::string, std::string>>>;

template <class T>
void store_into(T& to, const ParsedValue& v) {
    if constexpr (std::is_same_v<T, std::string>) {
        to = v.text;
    } else if constexpr (std::is_same_v<T, bool>) {
        to = v.number != 0;
    } else if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) {
        to = static_cast<T>(v.number);  // enums: the choice index, in declaration order
    } else if constexpr (kIsStringList<T>) {
        to.insert(to.end(), v.items.begin(), v.items.end());
    } else {
        static_assert(kIsHeaderList<T>, "a member type the schema cannot store");
        to.push_back(v.name_value);
    }
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items)
        out += (out.empty() ? "" : ", ") + s;
    return out;
}

template <class T>
std::string show_of(const KeySpec& k, const T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
        return v;
    } else if constexpr (std::is_same_v<T, bool>) {
        return v ? "yes" : "no";
    } else if constexpr (std::is_enum_v<T>) {
        auto i = static_cast<std::size_t>(v);
        return i < k.choices.size() ? std::string(k.choices[i]) : std::to_string(i);
    } else if constexpr (std::is_integral_v<T>) {
        if (k.type == ValueType::octal_mode) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(v));
            return buf;
        }
        return std::to_string(v);
    } else if constexpr (kIsStringList<T>) {
        return join(v);
    } else {
        std::vector<std::string> lines;
        for (const auto& [n, val] : v)
            lines.push_back(n + ": " + val);
        return join(lines);
    }
}

template <auto M>
constexpr Field field() {
    using S = typename MemberTraits<decltype(M)>::Owner;
    using T = typename MemberTraits<decltype(M)>::Type;
    Field f;
    f.list = kIsStringList<T> || kIsHeaderList<T>;
    f.store = [](void* o, const ParsedValue& v) { store_into(static_cast<S*>(o)->*M, v); };
    f.copy = [](void* to, const void* from) {
        static_cast<S*>(to)->*M = static_cast<const S*>(from)->*M;
    };
    f.show = [](const KeySpec& k, const void* o) {
        return show_of(k, static_cast<const S*>(o)->*M);
    };
    return f;
}

// ---- Choices, in the declaration order of their enums (config.hpp) ----------

constexpr std::array<std::string_view, 4> kLogLevels = {"debug", "info", "warning", "error"};
constexpr std::array<std::string_view, 2> kFlows = {"client_credentials", "delegated"};
constexpr std::array<std::string_view, 2> kAssertionAlgs = {"PS256", "RS256"};
constexpr std::array<std::string_view, 3> kUnknownSender = {"reject", "tempfail", "accept"};
constexpr std::array<std::string_view, 2> kNullSender = {"rewrite", "reject"};
constexpr std::array<std::string_view, 3> kOnError = {"tempfail", "accept", "reject"};
constexpr std::array<std::string_view, 2> kMethods = {"smtp", "graph"};
// kClouds: cloud_names() (clouds.cpp), the one table of clouds.

using S = SectionKind;
using T = ValueType;
using I = Inherit;

// ---- The table ---------------------------------------------------------------

// clang-format off
const KeySpec kKeys[] = {
    // [relay]
    {.section = S::relay, .name = "state_dir", .type = T::required_path,
     .field = field<&RelaySettings::state_dir>(), .shown_default = "default /var/lib/o365relay"},
    {.section = S::relay, .name = "log", .type = T::log_target,
     .field = field<&RelaySettings::log>(), .shown_default = "default syslog"},
    {.section = S::relay, .name = "log_level", .type = T::choice,
     .field = field<&RelaySettings::log_level>(), .choices = kLogLevels,
     .shown_default = "default info"},
    {.section = S::relay, .name = "user", .type = T::nonempty,
     .field = field<&RelaySettings::user>(), .shown_default = "default o365relay"},

    // [smtp]
    {.section = S::smtp, .name = "host", .type = T::nonempty,
     .field = field<&SmtpSettings::host>(),
     .shown_default = "default smtp.office365.com: the cloud's"},
    {.section = S::smtp, .name = "port", .type = T::integer,
     .field = field<&SmtpSettings::port>(), .min = 1, .max = 65535,
     .shown_default = "default 587"},
    {.section = S::smtp, .name = "helo_name", .type = T::text,
     .field = field<&SmtpSettings::helo_name>(),
     .shown_default = "default: empty, the host's fully qualified name"},
    {.section = S::smtp, .name = "ca_file", .type = T::path,
     .field = field<&SmtpSettings::ca_file>(),
     .shown_default = "default: empty, the system trust store"},
    {.section = S::smtp, .name = "connect_timeout", .type = T::integer,
     .field = field<&SmtpSettings::connect_timeout>(), .min = 1, .max = 3600,
     .shown_default = "default 30"},
    {.section = S::smtp, .name = "command_timeout", .type = T::integer,
     .field = field<&SmtpSettings::command_timeout>(), .min = 1, .max = 3600,
     .shown_default = "default 60"},
    {.section = S::smtp, .name = "data_timeout", .type = T::integer,
     .field = field<&SmtpSettings::data_timeout>(), .min = 1, .max = 3600,
     .shown_default = "default 180"},
    {.section = S::smtp, .name = "deadline", .type = T::integer,
     .field = field<&SmtpSettings::deadline>(), .min = 1, .max = 3600,
     .shown_default = "default 900"},

    // [entra]: defaults of every account
    {.section = S::entra, .name = "cloud", .type = T::choice,
     .field = field<&EntraSettings::cloud>(), .choices = cloud_names(),
     .inherit = I::config_wide, .shown_default = "default global"},
    {.section = S::entra, .name = "authority", .type = T::https_url,
     .field = field<&EntraSettings::authority>(), .inherit = I::every_flow, .credential = true,
     .shown_default = "default https://login.microsoftonline.com: the cloud's"},
    {.section = S::entra, .name = "tenant", .type = T::text,
     .field = field<&EntraSettings::tenant>(), .inherit = I::every_flow, .required = true,
     .credential = true},
    {.section = S::entra, .name = "client_id", .type = T::text,
     .field = field<&EntraSettings::client_id>(), .inherit = I::every_flow, .required = true,
     .credential = true},
    {.section = S::entra, .name = "certificate_file", .type = T::path,
     .field = field<&EntraSettings::certificate_file>(), .inherit = I::client_credentials_only,
     .credential = true, .shown_default = "default: empty"},
    {.section = S::entra, .name = "private_key_file", .type = T::path,
     .field = field<&EntraSettings::private_key_file>(), .inherit = I::client_credentials_only,
     .credential = true, .shown_default = "default: empty"},
    {.section = S::entra, .name = "client_secret_file", .type = T::path,
     .field = field<&EntraSettings::client_secret_file>(),
     .inherit = I::client_credentials_only, .credential = true,
     .shown_default = "default: empty"},
    {.section = S::entra, .name = "assertion_alg", .type = T::choice,
     .field = field<&EntraSettings::assertion_alg>(), .choices = kAssertionAlgs,
     .inherit = I::every_flow, .credential = true, .shown_default = "default PS256"},
    {.section = S::entra, .name = "scope", .type = T::text,
     .field = field<&EntraSettings::scope>(), .inherit = I::client_credentials_only,
     .credential = true, .shown_default = "default: empty, by flow"},
    {.section = S::entra, .name = "ca_file", .type = T::path,
     .field = field<&EntraSettings::ca_file>(), .inherit = I::every_flow,
     .shown_default = "default: empty, the system trust store"},
    {.section = S::entra, .name = "refresh_window", .type = T::integer,
     .field = field<&EntraSettings::refresh_window>(), .min = 0, .max = 86400,
     .inherit = I::every_flow, .shown_default = "default 600"},
    {.section = S::entra, .name = "http_timeout", .type = T::integer,
     .field = field<&EntraSettings::http_timeout>(), .min = 1, .max = 600,
     .inherit = I::every_flow, .shown_default = "default 30"},
    {.section = S::entra, .name = "proxy", .type = T::proxy_url,
     .field = field<&EntraSettings::proxy>(), .inherit = I::every_flow,
     .hint = "http://HOST:PORT", .shown_default = "default: empty, none"},

    // [graph]: Microsoft Graph, for the accounts with method = graph
    {.section = S::graph, .name = "endpoint", .type = T::https_url,
     .field = field<&GraphSettings::endpoint>(),
     .shown_default = "default https://graph.microsoft.com: the cloud's"},
    {.section = S::graph, .name = "scope", .type = T::text,
     .field = field<&GraphSettings::scope>(), .shown_default = "default: empty, by flow"},
    {.section = S::graph, .name = "ca_file", .type = T::path,
     .field = field<&GraphSettings::ca_file>(),
     .shown_default = "default: empty, the system trust store"},
    {.section = S::graph, .name = "http_timeout", .type = T::integer,
     .field = field<&GraphSettings::http_timeout>(), .min = 1, .max = 3600,
     .shown_default = "default 60"},
    {.section = S::graph, .name = "proxy", .type = T::proxy_url,
     .field = field<&GraphSettings::proxy>(), .hint = "http://HOST:PORT",
     .shown_default = "default: empty, none"},

    // [account NAME]
    {.section = S::account, .name = "mailbox", .type = T::address,
     .field = field<&Account::mailbox>(), .required = true},
    {.section = S::account, .name = "senders", .type = T::sender_list,
     .field = field<&Account::senders>(), .shown_default = "default: the mailbox"},
    {.section = S::account, .name = "flow", .type = T::choice,
     .field = field<&Account::flow>(), .choices = kFlows, .credential = true,
     .shown_default = "default client_credentials"},
    {.section = S::account, .name = "method", .type = T::choice,
     .field = field<&Account::method>(), .choices = kMethods, .shown_default = "default smtp"},
    {.section = S::account, .name = "add_header", .type = T::header,
     .field = field<&Account::headers>(), .hint = "Name: value"},

    // [milter]
    {.section = S::milter, .name = "socket", .type = T::milter_socket,
     .field = field<&MilterSettings::socket>(),
     .shown_default = "default unix:/var/spool/postfix/o365relay/milter.sock"},
    {.section = S::milter, .name = "socket_mode", .type = T::octal_mode,
     .field = field<&MilterSettings::socket_mode>(), .shown_default = "default 0660"},
    {.section = S::milter, .name = "on_error", .type = T::choice,
     .field = field<&MilterSettings::on_error>(), .choices = kOnError,
     .shown_default = "default tempfail"},
    {.section = S::milter, .name = "tag_header", .type = T::header_name,
     .field = field<&MilterSettings::tag_header>(),
     .shown_default = "default X-O365Relay-Account"},

    // [policy]
    {.section = S::policy, .name = "unknown_sender", .type = T::choice,
     .field = field<&PolicySettings::unknown_sender>(), .choices = kUnknownSender,
     .shown_default = "default reject"},
    {.section = S::policy, .name = "require_from_alignment", .type = T::boolean,
     .field = field<&PolicySettings::require_from_alignment>(), .shown_default = "default yes"},
    {.section = S::policy, .name = "null_sender", .type = T::choice,
     .field = field<&PolicySettings::null_sender>(), .choices = kNullSender,
     .shown_default = "default rewrite"},
    {.section = S::policy, .name = "null_sender_account", .type = T::text,
     .field = field<&PolicySettings::null_sender_account>(), .shown_default = "default: empty"},
    {.section = S::policy, .name = "max_recipients", .type = T::integer,
     .field = field<&PolicySettings::max_recipients>(), .min = 1, .max = 100000,
     .shown_default = "default 500"},
    {.section = S::policy, .name = "max_message_size", .type = T::integer,
     .field = field<&PolicySettings::max_message_size>(), .min = 1, .max = 1LL << 40,
     .shown_default = "default 26214400"},
    {.section = S::policy, .name = "messages_per_minute", .type = T::integer,
     .field = field<&PolicySettings::messages_per_minute>(), .min = 0, .max = 1000000,
     .shown_default = "default 0: off"},
    {.section = S::policy, .name = "recipients_per_day", .type = T::integer,
     .field = field<&PolicySettings::recipients_per_day>(), .min = 0, .max = 100000000,
     .shown_default = "default 10000"},
    {.section = S::policy, .name = "allowed_recipient_domains", .type = T::domain_list,
     .field = field<&PolicySettings::allowed_recipient_domains>(),
     .shown_default = "default: empty, any"},
    {.section = S::policy, .name = "blocked_recipient_domains", .type = T::domain_list,
     .field = field<&PolicySettings::blocked_recipient_domains>(),
     .shown_default = "default: empty"},
};
// clang-format on

struct SectionInfo {
    SectionKind kind;
    std::string_view name;
};
constexpr SectionInfo kSections[] = {
    {S::relay, "relay"},     {S::smtp, "smtp"},     {S::entra, "entra"},   {S::graph, "graph"},
    {S::account, "account"}, {S::milter, "milter"}, {S::policy, "policy"},
};

// ---- Where a section's keys are stored ---------------------------------------

// The struct that holds section S's keys: in C, or for [entra] and account keys
// in A when given. nullptr when that is not at hand. Const in, const out.
template <class C, class A>
auto target_of(SectionKind s, C* c, A* a)
    -> std::conditional_t<std::is_const_v<C>, const void*, void*> {
    switch (s) {
        case S::relay:
            return c ? &c->relay : nullptr;
        case S::smtp:
            return c ? &c->smtp : nullptr;
        case S::entra:
            if (a) return &a->entra;
            return c ? &c->entra : nullptr;
        case S::graph:
            return c ? &c->graph : nullptr;
        case S::account:
            return a;
        case S::milter:
            return c ? &c->milter : nullptr;
        case S::policy:
            return c ? &c->policy : nullptr;
    }
    return nullptr;
}

// ---- Checking values, one function per ValueType -----------------------------

using Problem = std::optional<std::string>;

// Items separated by commas or white space; a double-quoted part keeps both.
std::vector<std::string> split_list(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false;
    for (char c : s) {
        if (c == '"') quoted = !quoted;
        if (!quoted && (c == ',' || std::isspace(static_cast<unsigned char>(c)))) {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

bool header_name_ok(std::string_view v) {
    if (v.empty()) return false;
    for (unsigned char c : v)
        if (c <= 32 || c >= 127 || c == ':') return false;
    return true;
}

std::string quoted(std::string_view v) {
    return "'" + std::string(v) + "'";
}

Problem check_integer(const KeySpec& k, std::string_view v, ParsedValue& out) {
    long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || p != v.data() + v.size())
        return quoted(v) + " is not a whole number";
    if (n < k.min || n > k.max)
        return quoted(v) + " is out of range " + std::to_string(k.min) + ".." +
               std::to_string(k.max);
    out.number = n;
    return std::nullopt;
}

Problem check_boolean(std::string_view v, ParsedValue& out) {
    std::string l = lower_ascii(v);
    if (l == "yes" || l == "true" || l == "on" || l == "1") {
        out.number = 1;
    } else if (l == "no" || l == "false" || l == "off" || l == "0") {
        out.number = 0;
    } else {
        return quoted(v) + " is not yes or no";
    }
    return std::nullopt;
}

Problem check_choice(const KeySpec& k, std::string_view v, ParsedValue& out) {
    std::string names;
    for (std::size_t i = 0; i < k.choices.size(); ++i) {
        if (v == k.choices[i]) {
            out.number = static_cast<long long>(i);
            return std::nullopt;
        }
        names += (names.empty() ? "" : " | ") + std::string(k.choices[i]);
    }
    return quoted(v) + " is not one of: " + names;
}

Problem check_octal_mode(std::string_view v, ParsedValue& out) {
    int mode = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), mode, 8);
    if (v.empty() || ec != std::errc() || p != v.data() + v.size() || mode > 0777)
        return quoted(v) + " is not an octal mode such as 0660";
    out.number = mode;
    return std::nullopt;
}

Problem check_domain_list(std::string_view v, ParsedValue& out) {
    for (auto& d : split_list(v)) {
        std::string l = d[0] == '@' ? d.substr(1) : d;
        if (l.empty() || l.find('@') != std::string::npos) return quoted(d) + " is not a domain";
        out.items.push_back(lower_ascii(l));
    }
    return std::nullopt;
}

Problem check_sender_list(std::string_view v, ParsedValue& out) {
    for (auto& s : split_list(v)) {
        if (s[0] == '@') {
            if (s.size() < 2 || s.find('@', 1) != std::string::npos)
                return quoted(s) + " is not @domain";
            out.items.push_back("@" + lower_ascii(s.substr(1)));
        } else {
            auto a = parse_address(s);
            if (!a || a->local.empty()) return quoted(s) + " is not an address or @domain";
            out.items.push_back(a->normalized());
        }
    }
    return std::nullopt;
}

Problem check_header(std::string_view v, ParsedValue& out) {
    auto colon = v.find(':');
    if (colon == std::string_view::npos) return std::string("expected 'Header-Name: value'");
    std::string name = trim(v.substr(0, colon));
    std::string value = trim(v.substr(colon + 1));
    if (!header_name_ok(name)) return quoted(name) + " is not a valid header name";
    for (unsigned char c : value)
        if (c < 32 && c != '\t') return std::string("header value contains a control character");
    out.name_value = {name, value};
    return std::nullopt;
}

// "http://host:port" or "https://host:port", an optional "/" at the end; no
// credentials (a secret never lives in the config file).
Problem check_proxy_url(std::string_view v) {
    if (v.empty()) return std::nullopt;
    std::string_view rest;
    if (starts_with(v, "http://")) {
        rest = v.substr(7);
    } else if (starts_with(v, "https://")) {
        rest = v.substr(8);
    } else {
        return quoted(v) + ": must be http://HOST:PORT or https://HOST:PORT";
    }
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.find('@') != std::string_view::npos)
        return std::string("a user and password in the proxy URL are not supported");  // not echoed
    auto colon = rest.rfind(':');
    std::string_view host = colon == std::string_view::npos ? rest : rest.substr(0, colon);
    std::string_view port = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
    int n = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (host.empty() || rest.find('/') != std::string_view::npos || port.empty() ||
        ec != std::errc() || p != port.data() + port.size() || n < 1 || n > 65535)
        return quoted(v) + ": must be http://HOST:PORT or https://HOST:PORT";
    return std::nullopt;
}

// Parses and checks V for K into OUT.
Problem check_value(const KeySpec& k, std::string_view v, ParsedValue& out) {
    out.text = std::string(v);
    switch (k.type) {
        case T::text:
            return std::nullopt;
        case T::nonempty:
            if (v.empty()) return std::string("must not be empty");
            return std::nullopt;
        case T::path:
            if (!v.empty() && v[0] != '/') return std::string("must be an absolute path");
            return std::nullopt;
        case T::required_path:
            if (v.empty() || v[0] != '/') return std::string("must be an absolute path");
            return std::nullopt;
        case T::https_url:
            if (!starts_with(v, "https://") || v.size() == 8)
                return quoted(v) + ": must be an https:// URL";
            return std::nullopt;
        case T::integer:
            return check_integer(k, v, out);
        case T::boolean:
            return check_boolean(v, out);
        case T::choice:
            return check_choice(k, v, out);
        case T::octal_mode:
            return check_octal_mode(v, out);
        case T::log_target:
            if (v != "syslog" && v != "stderr" && !starts_with(v, "file:/"))
                return quoted(v) + " is not one of: syslog | stderr | file:/absolute/path";
            return std::nullopt;
        case T::milter_socket:
            if (!starts_with(v, "unix:/") && !starts_with(v, "inet:") &&
                !starts_with(v, "inet6:") && !starts_with(v, "local:/"))
                return quoted(v) + " is not unix:/PATH or inet:PORT@HOST";
            return std::nullopt;
        case T::address: {
            auto a = parse_address(v);
            if (!a || a->local.empty()) return quoted(v) + " is not a mailbox address";
            out.text = a->normalized();
            return std::nullopt;
        }
        case T::header_name:
            if (!header_name_ok(v)) return quoted(v) + " is not a valid header name";
            return std::nullopt;
        case T::domain_list:
            return check_domain_list(v, out);
        case T::sender_list:
            return check_sender_list(v, out);
        case T::header:
            return check_header(v, out);
        case T::proxy_url:
            return check_proxy_url(v);
    }
    return std::string("internal: unknown value type");
}

}  // namespace

std::span<const KeySpec> config_keys() {
    return kKeys;
}

std::string_view section_name(SectionKind s) {
    for (const auto& i : kSections)
        if (i.kind == s) return i.name;
    return "?";
}

std::optional<SectionKind> section_kind(std::string_view header) {
    if (starts_with(header, "account ")) return S::account;
    for (const auto& i : kSections)
        if (i.kind != S::account && i.name == header) return i.kind;
    return std::nullopt;
}

std::string known_sections() {
    std::string out;
    for (const auto& i : kSections)
        out +=
            (out.empty() ? "" : ", ") + std::string(i.name) + (i.kind == S::account ? " NAME" : "");
    return out;
}

const KeySpec* find_key(SectionKind s, std::string_view name) {
    for (const auto& k : kKeys)
        if (k.name == name && (k.section == s || (s == S::account && k.inherit != I::no &&
                                                  k.inherit != I::config_wide)))
            return &k;
    return nullptr;
}

std::optional<std::string> store_value(const KeySpec& k, std::string_view text, Config& config,
                                       Account* account) {
    ParsedValue v;
    if (auto problem = check_value(k, text, v)) return problem;
    void* target = target_of(k.section, &config, account);
    if (!target) return std::string("internal: no place to store this key");
    k.field.store(target, v);
    return std::nullopt;
}

std::string value_text(const KeySpec& k, const Config* config, const Account* account) {
    const void* target = target_of(k.section, config, account);
    return target ? k.field.show(k, target) : std::string();
}

void inherit_entra(Account& account, const EntraSettings& from,
                   const std::vector<std::string_view>& set_in_section) {
    for (const auto& k : kKeys) {
        if (k.section != S::entra || k.inherit == I::no) continue;
        if (k.inherit == I::config_wide) {  // never set in an account section
            k.field.copy(&account.entra, &from);
            continue;
        }
        if (std::find(set_in_section.begin(), set_in_section.end(), k.name) != set_in_section.end())
            continue;
        if (k.inherit == I::client_credentials_only && account.flow != Flow::client_credentials)
            continue;
        k.field.copy(&account.entra, &from);
    }
}

namespace {

// The config-wide keys whose default is the cloud's: key, and its preset value.
struct PresetKey {
    SectionKind section;
    std::string_view key;
    std::string_view CloudPreset::*value;
};
constexpr PresetKey kPresetKeys[] = {
    {S::entra, "authority", &CloudPreset::authority},
    {S::smtp, "host", &CloudPreset::smtp_host},
    {S::graph, "endpoint", &CloudPreset::graph_endpoint},
};

}  // namespace

void apply_cloud_preset(Config& config,
                        const std::function<bool(SectionKind, std::string_view)>& set_in_file) {
    const CloudPreset& preset = cloud_preset(config.entra.cloud);
    for (const auto& pk : kPresetKeys) {
        if (set_in_file(pk.section, pk.key)) continue;
        const KeySpec* k = find_key(pk.section, pk.key);
        if (k) store_value(*k, preset.*pk.value, config, nullptr);  // the table's values pass
    }
}

std::string man_line(const KeySpec& k) {
    std::string line(k.name);
    if (!k.hint.empty()) line += " " + std::string(k.hint);
    if (!k.shown_default.empty()) line += " (" + std::string(k.shown_default) + ")";
    return line;
}

std::vector<CredentialSetting> credential_settings(const Account& a) {
    std::vector<CredentialSetting> out;
    for (const auto& k : kKeys)
        if (k.credential)
            out.push_back(
                {std::string(k.name), value_text(k, nullptr, &a), k.is_credential_file()});
    return out;
}

}  // namespace o365
