#include "config.hpp"

#include <ini.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "address.hpp"
#include "error.hpp"

namespace o365 {

std::string EntraSettings::token_endpoint() const {
    std::string a = authority;
    while (!a.empty() && a.back() == '/')
        a.pop_back();
    return a + "/" + tenant + "/oauth2/v2.0/token";
}

std::string EntraSettings::devicecode_endpoint() const {
    std::string a = authority;
    while (!a.empty() && a.back() == '/')
        a.pop_back();
    return a + "/" + tenant + "/oauth2/v2.0/devicecode";
}

const Account* Config::find_account(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &accounts[it->second];
}

namespace {

std::string trim(std::string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
        ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
        --e;
    return std::string(s.substr(b, e - b));
}

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

// Which [entra] keys an account has overridden, so that [entra] values that come
// later in the file still reach the account.
struct AccountDraft {
    Account acc;
    int line = 0;
    std::set<std::string> overridden;
    bool has_mailbox = false;
    bool has_flow = false;
};

}  // namespace

class ConfigBuilder {
  public:
    explicit ConfigBuilder(std::string name) : name_(std::move(name)) {
        cfg_ = std::make_shared<Config>();
        cfg_->path = name_;
    }

    // Called by inih for each key. Throws ConfigError.
    void on_key(int line, const std::string& section, const std::string& key,
                const std::string& value) {
        line_ = line;
        section_ = section;
        key_ = key;
        if (section == "relay") {
            relay_key(key, value);
        } else if (section == "smtp") {
            smtp_key(key, value);
        } else if (section == "entra") {
            if (!entra_key(cfg_->entra, key, value)) unknown();
        } else if (section == "milter") {
            milter_key(key, value);
        } else if (section == "policy") {
            policy_key(key, value);
        } else if (section.rfind("account ", 0) == 0) {
            account_key(section.substr(8), key, value);
        } else {
            fail_section(section);
        }
    }

    // A section header with no keys still has to be a known one.
    void on_section(int line, const std::string& section) {
        line_ = line;
        section_ = section;
        key_.clear();
        static const std::set<std::string> known = {"relay", "smtp", "entra", "milter", "policy"};
        if (known.count(section)) return;
        if (section.rfind("account ", 0) == 0) {
            std::string n = trim(section.substr(8));
            if (n.empty()) fail("account section needs a name: [account NAME]");
            for (char c : n) {
                if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                      c == '.'))
                    fail("account name '" + n +
                         "' may only contain letters, digits, '-', '_' and '.'");
            }
            if (drafts_index_.count(n)) fail("account '" + n + "' is defined twice");
            drafts_index_[n] = drafts_.size();
            AccountDraft d;
            d.acc.name = n;
            d.line = line;
            drafts_.push_back(std::move(d));
            return;
        }
        fail_section(section);
    }

    std::shared_ptr<const Config> finish() {
        key_.clear();
        Config& c = *cfg_;
        if (c.smtp.host.empty()) at_end("[smtp] host: must not be empty");
        for (auto& d : drafts_) {
            line_ = d.line;
            section_ = "account " + d.acc.name;
            Account a = d.acc;
            // Inherit [entra] for every key the account did not override.
            EntraSettings merged = c.entra;
            for (const auto& k : d.overridden)
                entra_copy_key(merged, a.entra, k);
            a.entra = merged;
            if (!d.has_mailbox) fail_key("mailbox", "required key is missing");
            if (a.senders.empty()) a.senders.push_back(a.mailbox);
            if (a.entra.tenant.empty())
                fail_key("tenant", "no tenant: set it in [entra] or in the account");
            if (a.entra.client_id.empty())
                fail_key("client_id", "no client_id: set it in [entra] or in the account");
            if (a.entra.scope.empty())
                a.entra.scope = a.flow == Flow::delegated ? kDelegatedScope : kAppOnlyScope;
            if (a.flow == Flow::client_credentials) {
                bool cert = !a.entra.certificate_file.empty();
                bool key = !a.entra.private_key_file.empty();
                bool secret = !a.entra.client_secret_file.empty();
                if (cert != key)
                    fail_key(cert ? "private_key_file" : "certificate_file",
                             "certificate_file and private_key_file go together");
                if (!cert && !secret)
                    fail_key("client_secret_file",
                             "flow client_credentials needs a credential: certificate_file + "
                             "private_key_file, or client_secret_file");
            }
            if (a.entra.authority.rfind("https://", 0) != 0)
                fail_key("authority", "must be an https:// URL");
            c.by_name_[a.name] = c.accounts.size();
            c.accounts.push_back(std::move(a));
        }
        key_.clear();
        if (!c.policy.null_sender_account.empty() && !c.find_account(c.policy.null_sender_account))
            at_end("[policy] null_sender_account: no account named '" +
                   c.policy.null_sender_account + "'");
        if (c.smtp.deadline <= c.smtp.connect_timeout)
            at_end("[smtp] deadline: must be larger than connect_timeout");
        return cfg_;
    }

    [[noreturn]] void fail(const std::string& msg) const {
        std::ostringstream o;
        o << name_ << ":" << line_ << ": ";
        if (!section_.empty()) o << "[" << section_ << "] ";
        if (!key_.empty()) o << key_ << ": ";
        o << msg;
        throw ConfigError(o.str());
    }

    std::string name_;
    int line_ = 0;

  private:
    [[noreturn]] void fail_key(const std::string& key, const std::string& msg) {
        key_ = key;
        fail(msg);
    }
    [[noreturn]] void at_end(const std::string& msg) const {
        throw ConfigError(name_ + ": " + msg);
    }
    [[noreturn]] void unknown() const { fail("unknown key"); }
    [[noreturn]] void fail_section(const std::string& s) const {
        std::ostringstream o;
        o << name_ << ":" << line_ << ": unknown section [" << s
          << "] (known: relay, smtp, entra, account NAME, milter, policy)";
        throw ConfigError(o.str());
    }

    long long to_int(const std::string& v, long long lo, long long hi) const {
        long long n = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc() || p != v.data() + v.size() || v.empty())
            fail("'" + v + "' is not a whole number");
        if (n < lo || n > hi)
            fail("'" + v + "' is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
        return n;
    }
    bool to_bool(const std::string& v) const {
        std::string l = v;
        std::transform(l.begin(), l.end(), l.begin(), ::tolower);
        if (l == "yes" || l == "true" || l == "on" || l == "1") return true;
        if (l == "no" || l == "false" || l == "off" || l == "0") return false;
        fail("'" + v + "' is not yes or no");
    }
    template <typename E>
    E to_enum(const std::string& v,
              std::initializer_list<std::pair<const char*, E>> choices) const {
        std::string names;
        for (auto& [n, e] : choices) {
            if (v == n) return e;
            names += names.empty() ? "" : " | ";
            names += n;
        }
        fail("'" + v + "' is not one of: " + names);
    }
    std::string nonempty(const std::string& v) const {
        if (v.empty()) fail("must not be empty");
        return v;
    }

    void relay_key(const std::string& k, const std::string& v) {
        auto& r = cfg_->relay;
        if (k == "state_dir") {
            if (v.empty() || v[0] != '/') fail("must be an absolute path");
            r.state_dir = v;
        } else if (k == "log") {
            if (v != "syslog" && v != "stderr" && !(v.rfind("file:/", 0) == 0))
                fail("'" + v + "' is not one of: syslog | stderr | file:/absolute/path");
            r.log = v;
        } else if (k == "log_level") {
            r.log_level = to_enum<LogLevel>(v, {{"debug", LogLevel::debug},
                                                {"info", LogLevel::info},
                                                {"warning", LogLevel::warning},
                                                {"error", LogLevel::error}});
        } else if (k == "user") {
            r.user = nonempty(v);
        } else {
            unknown();
        }
    }

    void smtp_key(const std::string& k, const std::string& v) {
        auto& s = cfg_->smtp;
        if (k == "host")
            s.host = nonempty(v);
        else if (k == "port")
            s.port = static_cast<int>(to_int(v, 1, 65535));
        else if (k == "helo_name")
            s.helo_name = v;
        else if (k == "ca_file")
            s.ca_file = v;
        else if (k == "connect_timeout")
            s.connect_timeout = static_cast<int>(to_int(v, 1, 3600));
        else if (k == "command_timeout")
            s.command_timeout = static_cast<int>(to_int(v, 1, 3600));
        else if (k == "data_timeout")
            s.data_timeout = static_cast<int>(to_int(v, 1, 3600));
        else if (k == "deadline")
            s.deadline = static_cast<int>(to_int(v, 1, 3600));
        else
            unknown();
    }

    // Returns false for a key that is not an [entra] key.
    bool entra_key(EntraSettings& e, const std::string& k, const std::string& v) {
        if (k == "authority")
            e.authority = nonempty(v);
        else if (k == "tenant")
            e.tenant = v;
        else if (k == "client_id")
            e.client_id = v;
        else if (k == "certificate_file")
            e.certificate_file = v;
        else if (k == "private_key_file")
            e.private_key_file = v;
        else if (k == "client_secret_file")
            e.client_secret_file = v;
        else if (k == "scope")
            e.scope = v;
        else if (k == "ca_file")
            e.ca_file = v;
        else if (k == "refresh_window")
            e.refresh_window = static_cast<int>(to_int(v, 0, 86400));
        else if (k == "http_timeout")
            e.http_timeout = static_cast<int>(to_int(v, 1, 600));
        else if (k == "assertion_alg")
            e.assertion_alg = to_enum<AssertionAlg>(
                v, {{"PS256", AssertionAlg::ps256}, {"RS256", AssertionAlg::rs256}});
        else
            return false;
        if (!v.empty() && (k.size() > 5 && k.substr(k.size() - 5) == "_file") && v[0] != '/')
            fail("must be an absolute path");
        return true;
    }

    static void entra_copy_key(EntraSettings& to, const EntraSettings& from, const std::string& k) {
        if (k == "authority")
            to.authority = from.authority;
        else if (k == "tenant")
            to.tenant = from.tenant;
        else if (k == "client_id")
            to.client_id = from.client_id;
        else if (k == "certificate_file")
            to.certificate_file = from.certificate_file;
        else if (k == "private_key_file")
            to.private_key_file = from.private_key_file;
        else if (k == "client_secret_file")
            to.client_secret_file = from.client_secret_file;
        else if (k == "scope")
            to.scope = from.scope;
        else if (k == "ca_file")
            to.ca_file = from.ca_file;
        else if (k == "refresh_window")
            to.refresh_window = from.refresh_window;
        else if (k == "http_timeout")
            to.http_timeout = from.http_timeout;
        else if (k == "assertion_alg")
            to.assertion_alg = from.assertion_alg;
    }

    void milter_key(const std::string& k, const std::string& v) {
        auto& m = cfg_->milter;
        if (k == "socket") {
            if (v.rfind("unix:/", 0) != 0 && v.rfind("inet:", 0) != 0 &&
                v.rfind("inet6:", 0) != 0 && v.rfind("local:/", 0) != 0)
                fail("'" + v + "' is not unix:/PATH or inet:PORT@HOST");
            m.socket = v;
        } else if (k == "on_error") {
            m.on_error = to_enum<OnError>(v, {{"tempfail", OnError::tempfail},
                                              {"accept", OnError::accept},
                                              {"reject", OnError::reject}});
        } else if (k == "tag_header") {
            if (!header_name_ok(v)) fail("'" + v + "' is not a valid header name");
            m.tag_header = v;
        } else if (k == "socket_mode") {
            int mode = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), mode, 8);
            if (ec != std::errc() || p != v.data() + v.size() || v.empty() || mode > 0777)
                fail("'" + v + "' is not an octal mode such as 0660");
            m.socket_mode = mode;
        } else {
            unknown();
        }
    }

    static bool header_name_ok(const std::string& v) {
        if (v.empty()) return false;
        for (unsigned char c : v)
            if (c <= 32 || c >= 127 || c == ':') return false;
        return true;
    }

    std::vector<std::string> domain_list(const std::string& v) const {
        std::vector<std::string> out;
        for (auto& d : split_list(v)) {
            std::string l = d[0] == '@' ? d.substr(1) : d;
            if (l.empty() || l.find('@') != std::string::npos) fail("'" + d + "' is not a domain");
            out.push_back(lower_ascii(l));
        }
        return out;
    }

    void policy_key(const std::string& k, const std::string& v) {
        auto& p = cfg_->policy;
        if (k == "unknown_sender")
            p.unknown_sender = to_enum<UnknownSender>(v, {{"reject", UnknownSender::reject},
                                                          {"tempfail", UnknownSender::tempfail},
                                                          {"accept", UnknownSender::accept}});
        else if (k == "require_from_alignment")
            p.require_from_alignment = to_bool(v);
        else if (k == "null_sender")
            p.null_sender = to_enum<NullSender>(
                v, {{"rewrite", NullSender::rewrite}, {"reject", NullSender::reject}});
        else if (k == "null_sender_account")
            p.null_sender_account = v;
        else if (k == "max_recipients")
            p.max_recipients = static_cast<long>(to_int(v, 1, 100000));
        else if (k == "max_message_size")
            p.max_message_size = to_int(v, 1, 1LL << 40);
        else if (k == "messages_per_minute")
            p.messages_per_minute = static_cast<long>(to_int(v, 0, 1000000));
        else if (k == "recipients_per_day")
            p.recipients_per_day = static_cast<long>(to_int(v, 0, 100000000));
        else if (k == "allowed_recipient_domains")
            p.allowed_recipient_domains = domain_list(v);
        else if (k == "blocked_recipient_domains")
            p.blocked_recipient_domains = domain_list(v);
        else
            unknown();
    }

    void account_key(const std::string& name, const std::string& k, const std::string& v) {
        auto it = drafts_index_.find(trim(name));
        if (it == drafts_index_.end()) fail("internal: account section not registered");
        AccountDraft& d = drafts_[it->second];
        if (k == "mailbox") {
            auto a = parse_address(v);
            if (!a || a->local.empty()) fail("'" + v + "' is not a mailbox address");
            d.acc.mailbox = a->normalized();
            d.has_mailbox = true;
        } else if (k == "senders") {
            for (auto& s : split_list(v)) {
                if (s[0] == '@') {
                    if (s.size() < 2 || s.find('@', 1) != std::string::npos)
                        fail("'" + s + "' is not @domain");
                    d.acc.senders.push_back("@" + lower_ascii(s.substr(1)));
                } else {
                    auto a = parse_address(s);
                    if (!a || a->local.empty()) fail("'" + s + "' is not an address or @domain");
                    d.acc.senders.push_back(a->normalized());
                }
            }
        } else if (k == "flow") {
            d.acc.flow = to_enum<Flow>(v, {{"client_credentials", Flow::client_credentials},
                                           {"delegated", Flow::delegated}});
            d.has_flow = true;
        } else if (k == "add_header") {
            auto colon = v.find(':');
            if (colon == std::string::npos) fail("expected 'Header-Name: value'");
            std::string hn = trim(v.substr(0, colon));
            std::string hv = trim(v.substr(colon + 1));
            if (!header_name_ok(hn)) fail("'" + hn + "' is not a valid header name");
            for (unsigned char c : hv)
                if (c < 32 && c != '\t') fail("header value contains a control character");
            d.acc.headers.emplace_back(hn, hv);
        } else if (entra_key(d.acc.entra, k, v)) {
            d.overridden.insert(k);
        } else {
            unknown();
        }
    }

    std::shared_ptr<Config> cfg_;
    std::string section_;
    std::string key_;
    std::vector<AccountDraft> drafts_;
    std::map<std::string, std::size_t> drafts_index_;
};

namespace {

struct ParseState {
    ConfigBuilder* b = nullptr;
    std::string_view text;
    std::size_t pos = 0;
    int line = 0;
    bool too_long = false;
    std::string error;  // first exception text
};

// inih reader over a string, counting lines so that errors can name them.
char* read_line(char* str, int num, void* stream) {
    auto* st = static_cast<ParseState*>(stream);
    if (st->pos >= st->text.size() || !st->error.empty()) return nullptr;
    std::size_t nl = st->text.find('\n', st->pos);
    std::size_t end = nl == std::string_view::npos ? st->text.size() : nl + 1;
    std::size_t len = end - st->pos;
    ++st->line;
    if (len >= static_cast<std::size_t>(num)) {
        st->too_long = true;
        return nullptr;
    }
    std::string_view chunk = st->text.substr(st->pos, len);
    if (chunk.find('\0') != std::string_view::npos) {
        st->error = st->b->name_ + ":" + std::to_string(st->line) + ": NUL byte in file";
        return nullptr;
    }
    std::copy(chunk.begin(), chunk.end(), str);
    str[len] = '\0';
    st->pos = end;
    return str;
}

int on_ini(void* user, const char* section, const char* name, const char* value) {
    auto* st = static_cast<ParseState*>(user);
    if (!st->error.empty()) return 0;
    try {
        std::string sec = section ? section : "";
        // Collapse "account   x" spacing.
        if (sec.rfind("account", 0) == 0 && sec.size() > 7 && std::isspace((unsigned char)sec[7]))
            sec = "account " + trim(sec.substr(7));
        if (sec.empty() && name) {
            st->b->line_ = st->line;
            st->b->fail(std::string("key '") + name + "' outside of any section");
        }
        if (name) st->b->on_key(st->line, sec, name, value ? value : "");
    } catch (const ConfigError& e) {
        st->error = e.what();
        return 0;
    }
    return 1;
}

}  // namespace

std::shared_ptr<const Config> parse_config(const std::string& text, const std::string& name) {
    ConfigBuilder b(name);
    ParseState st;
    st.b = &b;
    st.text = text;
    // inih reports sections only through keys (INI_CALL_HANDLER_ON_NEW_SECTION is
    // off in Debian's build), so sections are registered by a pre-scan.
    {
        int line = 0;
        std::istringstream in(text);
        std::string l;
        while (std::getline(in, l)) {
            ++line;
            std::string t = trim(l);
            if (t.size() > 1 && t[0] == '[') {
                auto close = t.find(']');
                if (close == std::string::npos) continue;  // inih reports it
                std::string sec = trim(t.substr(1, close - 1));
                if (sec.rfind("account", 0) == 0 && sec.size() > 7 &&
                    std::isspace((unsigned char)sec[7]))
                    sec = "account " + trim(sec.substr(7));
                b.line_ = line;
                b.on_section(line, sec);
            }
        }
    }
    int rc = ini_parse_stream(read_line, &st, on_ini, &st);
    if (!st.error.empty()) throw ConfigError(st.error);
    if (st.too_long)
        throw ConfigError(name + ":" + std::to_string(st.line) +
                          ": line too long (at most 199 characters; repeat the key to continue "
                          "a list)");
    if (rc > 0)
        throw ConfigError(name + ":" + std::to_string(rc) +
                          ": syntax error (expected [section], key = value, or ; comment)");
    if (rc < 0) throw ConfigError(name + ": cannot parse");
    return b.finish();
}

std::shared_ptr<const Config> load_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot open config file: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw ConfigError(path + ": cannot read config file");
    return parse_config(ss.str(), path);
}

}  // namespace o365
