#include "config.hpp"

#include <fcntl.h>
#include <ini.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "config_schema.hpp"
#include "error.hpp"
#include "text.hpp"
#include "unique_fd.hpp"

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

// "account   x" -> "account x"; other section names unchanged.
std::string normalize_section(std::string_view sec) {
    if (sec.rfind("account", 0) == 0 && sec.size() > 7 &&
        std::isspace(static_cast<unsigned char>(sec[7])))
        return "account " + trim(sec.substr(7));
    return std::string(sec);
}

// inih (Debian 12's libinih 55) does not cut " ; comment" from a continuation
// line's text; the first line's text has it cut already.
std::string cut_inline_comment(std::string_view v) {
    for (std::size_t i = 1; i < v.size(); ++i)
        if (v[i] == ';' && std::isspace(static_cast<unsigned char>(v[i - 1])))
            return trim(v.substr(0, i));
    return std::string(v);
}

// An account section as read: the account and which of its keys the section set.
struct AccountDraft {
    Account acc;
    int line = 0;
    std::vector<std::string_view> set_keys;  // names from the schema table
};

// A rule that the settings of one resolved account must follow.
struct AccountRule {
    const char* key;  // named in the error
    bool (*broken)(const Account& a);
    const char* problem;
};

const AccountRule kAccountRules[] = {
    {"private_key_file",
     [](const Account& a) {
         return !a.entra.certificate_file.empty() && a.entra.private_key_file.empty();
     },
     "certificate_file and private_key_file go together"},
    {"certificate_file",
     [](const Account& a) {
         return a.entra.certificate_file.empty() && !a.entra.private_key_file.empty();
     },
     "certificate_file and private_key_file go together"},
    {"client_secret_file",
     [](const Account& a) {
         return a.flow == Flow::client_credentials && !a.uses_certificate() &&
                a.entra.client_secret_file.empty();
     },
     "flow client_credentials needs a credential: certificate_file + private_key_file, or "
     "client_secret_file"},
};

// A rule across sections; returns the problem.
struct ConfigRule {
    std::optional<std::string> (*check)(const Config& c);
};

const ConfigRule kConfigRules[] = {
    {[](const Config& c) -> std::optional<std::string> {
        const std::string& n = c.policy.null_sender_account;
        if (n.empty() || c.find_account(n)) return std::nullopt;
        return "[policy] null_sender_account: no account named '" + n + "'";
    }},
    {[](const Config& c) -> std::optional<std::string> {
        if (c.smtp.deadline > c.smtp.connect_timeout) return std::nullopt;
        return std::string("[smtp] deadline: must be larger than connect_timeout");
    }},
};

}  // namespace

// Builds a Config from the key lines inih reports, driven by the schema table.
class ConfigBuilder {
  public:
    explicit ConfigBuilder(std::string name) : name_(std::move(name)) {
        cfg_ = std::make_shared<Config>();
        cfg_->path = name_;
    }

    // A section header, seen by the pre-scan: it has to be a known one, and an
    // account section registers the account. Throws ConfigError.
    void on_section(int line, const std::string& section) {
        line_ = line;
        section_ = section;
        key_.clear();
        auto kind = section_kind(section);
        if (!kind) fail_section(section);
        if (*kind == SectionKind::account) add_account(line, trim(section.substr(8)));
    }

    // One key line, or a continuation line (indented) of the key before it.
    // Throws ConfigError.
    void on_key(int line, const std::string& section, const std::string& key,
                const std::string& value, bool continuation) {
        line_ = line;
        section_ = section;
        key_ = key;
        auto kind = section_kind(section);  // 1. the section
        if (!kind) fail_section(section);
        AccountDraft* draft = *kind == SectionKind::account ? account_draft(section) : nullptr;
        const KeySpec* spec = find_key(*kind, key);  // 2. the key
        if (!spec) fail("unknown key");
        std::string text = value;
        if (continuation) {  // 3. repeated, continued
            if (!spec->is_list())
                fail(
                    "a continuation line (indented) cannot continue a single value: do not indent "
                    "keys");
            text = cut_inline_comment(value);
        } else {
            note_setting(section, *spec);
        }
        if (auto problem = store_value(*spec, text, *cfg_, draft ? &draft->acc : nullptr))
            fail(*problem);  // 4. the value
        if (draft) draft->set_keys.push_back(spec->name);
    }

    // The Config, once every line is read. Throws ConfigError.
    std::shared_ptr<const Config> finish() {
        require_an_account();                                                    // 1.
        apply_cloud_preset(*cfg_, [this](SectionKind s, std::string_view key) {  // 2.
            return set_in_file(s, key);
        });
        for (auto& d : drafts_)  // 3.
            add_resolved_account(d);
        check_config_rules();  // 4.
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
    [[noreturn]] void fail_section(const std::string& s) const {
        throw ConfigError(name_ + ":" + std::to_string(line_) + ": unknown section [" + s +
                          "] (known: " + known_sections() + ")");
    }

    void add_account(int line, const std::string& n) {
        if (n.empty()) fail("account section needs a name: [account NAME]");
        for (char c : n) {
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
                fail("account name '" + n + "' may only contain letters, digits, '-', '_' and '.'");
        }
        if (drafts_index_.count(n)) fail("account '" + n + "' is defined twice");
        drafts_index_[n] = drafts_.size();
        AccountDraft d;
        d.acc.name = n;
        d.line = line;
        drafts_.push_back(std::move(d));
    }

    AccountDraft* account_draft(const std::string& section) {
        auto it = drafts_index_.find(trim(section.substr(8)));
        if (it == drafts_index_.end()) fail("internal: account section not registered");
        return &drafts_[it->second];
    }

    // A single-valued key may be set once per section; a list key appends.
    void note_setting(const std::string& section, const KeySpec& spec) {
        if (spec.is_list()) return;
        auto [it, first] = first_line_.try_emplace(section + "\n" + std::string(spec.name), line_);
        if (!first) fail("set twice (first at line " + std::to_string(it->second) + ")");
    }

    // Whether the file set the single-valued key KEY of section S (not an account's).
    bool set_in_file(SectionKind s, std::string_view key) const {
        return first_line_.count(std::string(section_name(s)) + "\n" + std::string(key)) != 0;
    }

    void require_an_account() const {
        if (drafts_.empty()) at_end("no [account NAME] section: o365relay relays nothing");
    }

    // Inherits [entra], fills the defaults that depend on other keys, checks.
    void add_resolved_account(AccountDraft& d) {
        line_ = d.line;
        section_ = "account " + d.acc.name;
        key_.clear();
        Account a = d.acc;
        inherit_entra(a, cfg_->entra, d.set_keys);              // 1.
        if (a.senders.empty()) a.senders.push_back(a.mailbox);  // 2.
        if (a.entra.scope.empty())
            a.entra.scope = cloud_preset(a.entra.cloud).smtp_scope(a.flow == Flow::delegated);
        check_required_keys(a);                 // 3.
        for (const auto& rule : kAccountRules)  // 4.
            if (rule.broken(a)) fail_key(rule.key, rule.problem);
        Config& c = *cfg_;
        c.by_name_[a.name] = c.accounts.size();
        c.accounts.push_back(std::move(a));
    }

    void check_required_keys(const Account& a) {
        for (const auto& k : config_keys()) {
            if (!k.required || !value_text(k, nullptr, &a).empty()) continue;
            if (k.section == SectionKind::account)
                fail_key(std::string(k.name), "required key is missing");
            fail_key(std::string(k.name),
                     "no " + std::string(k.name) + ": set it in [entra] or in the account");
        }
    }

    void check_config_rules() const {
        for (const auto& rule : kConfigRules)
            if (auto problem = rule.check(*cfg_)) at_end(*problem);
    }

    std::shared_ptr<Config> cfg_;
    std::string section_;
    std::string key_;
    std::vector<AccountDraft> drafts_;
    std::map<std::string, std::size_t> drafts_index_;
    std::map<std::string, int> first_line_;  // "section\nkey" -> line of a single value
};

namespace {

// The reader inih pulls lines from, and what it knows about the line it gave.
struct ParseState {
    ConfigBuilder* b = nullptr;
    std::string_view text;
    std::size_t pos = 0;
    int line = 0;
    bool too_long = false;
    std::string error;      // first exception text
    bool indented = false;  // the current line starts with white space
    std::string last_key;   // the key of the last key line, "" after a section line
    std::string last_section;
};

bool starts_with_space(std::string_view line) {
    return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

// A "[section]" line (after leading white space).
bool is_section_line(std::string_view line) {
    std::string t = trim(line);
    return !t.empty() && t[0] == '[';
}

// inih reader over a string, counting lines so that errors can name them, and
// noting whether a line is indented: inih reports an indented line as one more
// value of the key before it (INI_ALLOW_MULTILINE, on in Debian's build), and
// only the physical line tells that apart from a repeated key.
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
    st->indented = starts_with_space(chunk);
    if (is_section_line(chunk)) st->last_key.clear();
    std::copy(chunk.begin(), chunk.end(), str);
    str[len] = '\0';
    st->pos = end;
    return str;
}

int on_ini(void* user, const char* section, const char* name, const char* value) {
    auto* st = static_cast<ParseState*>(user);
    if (!st->error.empty()) return 0;
    try {
        std::string sec = normalize_section(section ? section : "");
        if (sec.empty() && name) {
            st->b->line_ = st->line;
            st->b->fail(std::string("key '") + name + "' outside of any section");
        }
        if (name) {
            bool continuation = st->indented && !st->last_key.empty() && st->last_key == name &&
                                st->last_section == sec;
            st->last_key = name;
            st->last_section = sec;
            st->b->on_key(st->line, sec, name, value ? value : "", continuation);
        }
    } catch (const ConfigError& e) {
        st->error = e.what();
        return 0;
    }
    return 1;
}

// inih reports sections only through keys (INI_CALL_HANDLER_ON_NEW_SECTION is
// off in Debian's build), so sections are registered by a pre-scan.
void register_sections(ConfigBuilder& b, const std::string& text) {
    int line = 0;
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
        ++line;
        std::string t = trim(l);
        if (t.size() > 1 && t[0] == '[') {
            auto close = t.find(']');
            if (close == std::string::npos) continue;  // inih reports it
            b.line_ = line;
            b.on_section(line, normalize_section(trim(t.substr(1, close - 1))));
        }
    }
}

// " (a directory)" and the like, for a file that is not a regular one.
const char* file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISLNK(m)) return "a symbolic link";
    return "not a file";
}

// Opens PATH without blocking (a FIFO would wait for a writer) and refuses
// anything but a regular file.
UniqueFd open_regular_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fd) throw ConfigError(path + ": cannot open config file: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw ConfigError(path + ": cannot stat config file: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw ConfigError(path + ": not a regular file but " + file_kind(st.st_mode) +
                          ": give the path of the configuration file");
    return fd;
}

std::string read_all(int fd, const std::string& path) {
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw ConfigError(path + ": cannot read config file: " + std::strerror(errno));
        if (n == 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

std::shared_ptr<const Config> parse_config(const std::string& text, const std::string& name) {
    ConfigBuilder b(name);
    register_sections(b, text);  // 1. sections and accounts
    ParseState st;               // 2. keys
    st.b = &b;
    st.text = text;
    int rc = ini_parse_stream(read_line, &st, on_ini, &st);
    if (!st.error.empty()) throw ConfigError(st.error);
    if (st.too_long)
        throw ConfigError(name + ":" + std::to_string(st.line) +
                          ": line too long (at most 199 characters; repeat the key or indent "
                          "the next line to continue a list)");
    if (rc > 0)
        throw ConfigError(name + ":" + std::to_string(rc) +
                          ": syntax error (expected [section], key = value, or ; comment)");
    if (rc < 0) throw ConfigError(name + ": cannot parse");
    return b.finish();  // 3. inheritance and checks
}

std::shared_ptr<const Config> load_config(const std::string& path) {
    UniqueFd fd = open_regular_file(path);
    return parse_config(read_all(fd.get(), path), path);
}

}  // namespace o365
