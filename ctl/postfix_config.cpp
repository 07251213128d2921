// postfix_config: see postfix_config.hpp for the contract.
#include "postfix_config.hpp"

#include <algorithm>
#include <set>
#include <sstream>
#include <string_view>

#include "error.hpp"

namespace o365::ctl {

namespace {

// Per delivery method, what one account's transport may do at once. With a
// recipient limit of 1 Postfix applies the per-destination concurrency limit
// per recipient, not per next hop (postconf(5),
// default_destination_recipient_limit), so the master.cf process limit
// (maxproc) of the account's own entry is what caps the account.
struct MethodLimits {
    DeliveryMethod method;
    int maxproc;            // Microsoft's concurrency per mailbox
    int recipient_limit;    // recipients per delivery request (pipe(8) has one exit status)
    int concurrency_limit;  // per destination: the account when recipient_limit > 1
};

constexpr MethodLimits kMethodLimits[] = {
    // SMTP: 3 concurrent connections per mailbox ("432 4.3.2" beyond); one
    // recipient per delivery so that each recipient gets its own outcome.
    {DeliveryMethod::smtp, 3, 1, 3},
    // Graph: 4 concurrent requests per mailbox; one delivery carries all the
    // recipients of a message so that To and Cc reach Graph intact.
    {DeliveryMethod::graph, 4, 100, 4},
};

// Postfix kills a pipe(8) command running past its time limit, and that is a
// bounce: leave the transport's own deadline this much room.
constexpr int kTimeLimitMargin = 100;
constexpr int kMinTimeLimit = 1000;  // Postfix's default command_time_limit

constexpr const char* kMilterMacros =
    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}";

constexpr const char* kDefaultMapName = "o365relay_sender_transport";

const MethodLimits& limits_of(const Account& a) {
    for (const auto& l : kMethodLimits)
        if (l.method == a.method) return l;
    return kMethodLimits[0];
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::vector<std::string> split_words(std::string_view s, std::string_view separators) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (separators.find(c) != std::string_view::npos) {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : std::string(sep)) + s;
    return out;
}

std::string normalise(std::string_view value) {
    return join(split_words(value, " \t\r\n"), " ");
}

// Single-quoted for sh: the fix lines are meant to be pasted.
std::string shell_quote(std::string_view s) {
    std::string out = "'";
    for (char c : s)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string postconf_cmd(const PostfixConfig& p) {
    return p.config_dir == PostfixSite{}.config_dir ? "postconf" : "postconf -c " + p.config_dir;
}

std::string postmap_cmd(const PostfixConfig& p) {
    return (p.config_dir == PostfixSite{}.config_dir ? "postmap "
                                                     : "postmap -c " + p.config_dir + " ") +
           p.map;
}

// --- generation, one step per part --------------------------------------------

std::string pipe_command(const Config& c, const PostfixSite& site) {
    return "pipe flags=q null_sender= user=" + c.relay.user + " argv=" + site.transport_path +
           " -c " + site.config_path + " -f ${sender} -q ${queue_id} -n ${nexthop} -- ${recipient}";
}

std::vector<MainParam> milter_params(const Config& c, const PostfixSite& site) {
    std::string milter = postfix_milter_address(c.milter.socket, site.queue_directory);
    return {
        {"smtpd_milters", milter, ParamMatch::list_member},
        {"non_smtpd_milters", milter, ParamMatch::list_member},
        {"milter_default_action", "tempfail", ParamMatch::exact},
        {"milter_mail_macros", kMilterMacros, ParamMatch::exact},
    };
}

std::vector<MainParam> transport_params(const Config& c, const Account& a) {
    const MethodLimits& l = limits_of(a);
    std::string t = transport_name(a);
    int time_limit = std::max(kMinTimeLimit, c.smtp.deadline + kTimeLimitMargin);
    return {
        {t + "_destination_recipient_limit", std::to_string(l.recipient_limit)},
        {t + "_destination_concurrency_limit", std::to_string(l.concurrency_limit)},
        {t + "_time_limit", std::to_string(time_limit) + "s"},
    };
}

MasterEntry master_entry(const Config& c, const Account& a, const PostfixSite& site) {
    MasterEntry e;
    e.service = transport_name(a);
    e.maxproc = std::to_string(limits_of(a).maxproc);
    e.command = pipe_command(c, site);
    return e;
}

// Every sender entry to its account's transport; the first account listing an
// entry wins, as in the resolver (accounts.hpp).
std::vector<MapLine> map_lines(const Config& c) {
    std::vector<MapLine> out;
    std::set<std::string> seen;
    for (const auto& a : c.accounts) {
        for (const auto& s : a.senders) {
            std::string key = lower(s);
            if (!seen.insert(key).second) continue;
            out.push_back({key, transport_name(a) + ":" + a.name});
        }
    }
    if (c.policy.null_sender == NullSender::rewrite && !c.policy.null_sender_account.empty()) {
        if (const Account* a = c.find_account(c.policy.null_sender_account))
            out.push_back({"<>", transport_name(*a) + ":" + a->name});
    }
    return out;
}

// --- comparison, one function per part ---------------------------------------

void compare_main(const PostfixConfig& w, const RunningPostfix& r, std::vector<Difference>& out) {
    for (const auto& p : w.main) {
        auto it = r.main.find(p.name);
        std::string want = p.name + " = " + p.value;
        if (it == r.main.end()) {
            out.push_back({"main.cf: " + p.name + " is not set", want,
                           postconf_cmd(w) + " -e " + shell_quote(want)});
            continue;
        }
        if (p.match == ParamMatch::exact) {
            if (normalise(it->second) != normalise(p.value))
                out.push_back({"main.cf: " + p.name + " is '" + it->second + "'", want,
                               postconf_cmd(w) + " -e " + shell_quote(want)});
            continue;
        }
        auto have = split_words(it->second, ", \t\r\n");
        if (std::find(have.begin(), have.end(), p.value) == have.end()) {
            have.push_back(p.value);
            std::string line = p.name + " = " + join(have, ", ");
            out.push_back({"main.cf: " + p.name + " is '" + it->second + "', without " + p.value,
                           line, postconf_cmd(w) + " -e " + shell_quote(line)});
        }
    }
}

void compare_master(const PostfixConfig& w, const RunningPostfix& r, std::vector<Difference>& out) {
    static const char* kColumns[] = {"service", "type",   "private", "unprivileged",
                                     "chroot",  "wakeup", "maxproc", "command"};
    for (const auto& e : w.master) {
        std::string fix = postconf_cmd(w) + " -M " + shell_quote(e.key() + "=" + e.one_line());
        auto it = r.master.find(e.key());
        if (it == r.master.end()) {
            out.push_back({"master.cf: no entry " + e.key(), e.one_line(), fix});
            continue;
        }
        auto want = e.fields();
        const auto& have = it->second;
        std::vector<std::string> diffs;
        for (std::size_t i = 2; i < 7; ++i) {
            std::string h = i < have.size() ? have[i] : "";
            if (h != want[i])
                diffs.push_back(std::string(kColumns[i]) + " is " + h + ", want " + want[i]);
        }
        std::vector<std::string> hc(have.begin() + std::min<std::size_t>(7, have.size()),
                                    have.end());
        std::vector<std::string> wc(want.begin() + 7, want.end());
        if (hc != wc) diffs.push_back("command is '" + join(hc, " ") + "'");
        if (!diffs.empty())
            out.push_back({"master.cf: " + e.key() + ": " + join(diffs, "; "), e.one_line(), fix});
    }
}

void compare_map(const PostfixConfig& w, const RunningPostfix& r, std::vector<Difference>& out) {
    std::string fix_tail = ", then: " + postmap_cmd(w);
    if (!r.map_error.empty()) {
        out.push_back({"sender transport map: " + r.map_error, w.map_file,
                       "write the map lines to " + w.map_file + fix_tail});
        return;
    }
    for (const auto& l : w.map_lines) {
        auto it = r.map.find(l.key);
        std::string want = l.key + " " + l.value;
        if (it == r.map.end() || !it->second) {
            out.push_back({"map: " + l.key + " is not in the map", want,
                           "add " + shell_quote(want) + " to " + w.map_file + fix_tail});
        } else if (*it->second != l.value) {
            out.push_back({"map: " + l.key + " goes to " + *it->second, want,
                           "change it to " + shell_quote(want) + " in " + w.map_file + fix_tail});
        }
    }
}

}  // namespace

std::vector<std::string> MasterEntry::fields() const {
    std::vector<std::string> out = {service, type, private_, unprivileged, chroot, wakeup, maxproc};
    for (auto& w : split_words(command, " \t"))
        out.push_back(std::move(w));
    return out;
}

std::string MasterEntry::one_line() const {
    return join(fields(), " ");
}

std::string MasterEntry::folded() const {
    // The command's arguments go on indented continuation lines, as in master.cf.
    auto words = split_words(command, " \t");
    std::ostringstream os;
    os << service << (service.size() < 10 ? std::string(10 - service.size(), ' ') : " ") << type
       << "  " << private_ << "       " << unprivileged << "       " << chroot << "       "
       << wakeup << "       " << maxproc << "       " << (words.empty() ? "" : words[0]) << "\n";
    std::string line = " ";
    for (std::size_t i = 1; i < words.size(); ++i) {
        if (line.size() > 1 && line.size() + 1 + words[i].size() > 100) {
            os << line << "\n";
            line = " ";
        }
        line += " " + words[i];
    }
    if (line.size() > 1) os << line << "\n";
    return os.str();
}

std::string transport_name(const Account& a) {
    return "o365-" + a.name;
}

std::string postfix_milter_address(const std::string& socket, const std::string& queue_directory) {
    constexpr std::string_view kUnix = "unix:", kInet = "inet:";
    if (socket.rfind(kUnix, 0) == 0) {
        std::string path = socket.substr(kUnix.size());
        std::string q = queue_directory;
        while (q.size() > 1 && q.back() == '/')
            q.pop_back();
        if (path.rfind(q + "/", 0) == 0) return "unix:" + path.substr(q.size() + 1);
        return socket;  // outside the queue directory: works only for unchrooted smtpd
    }
    if (socket.rfind(kInet, 0) == 0) {
        std::string rest = socket.substr(kInet.size());
        auto at = rest.find('@');
        if (at == std::string::npos || at == 0 || at + 1 == rest.size())
            throw ConfigError("[milter] socket " + socket + ": not inet:PORT@HOST");
        std::string port = rest.substr(0, at), host = rest.substr(at + 1);
        if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
        return "inet:" + host + ":" + port;
    }
    throw ConfigError("[milter] socket " + socket + ": Postfix can use only unix: or inet:");
}

PostfixConfig postfix_config(const Config& c, const PostfixSite& site) {
    PostfixConfig p;
    p.config_dir = site.config_dir;
    // 1. the sender transport map and the parameter that names it
    p.map = site.map.empty() ? "hash:" + site.config_dir + "/" + kDefaultMapName : site.map;
    auto colon = p.map.find(':');
    p.map_file = colon == std::string::npos ? p.map : p.map.substr(colon + 1);
    p.map_lines = map_lines(c);
    // 2. main.cf: the milter, the routing, each account's transport limits
    p.main = milter_params(c, site);
    p.main.push_back({"sender_dependent_default_transport_maps", p.map, ParamMatch::list_member});
    for (const auto& a : c.accounts)
        for (auto& param : transport_params(c, a))
            p.main.push_back(std::move(param));
    // 3. master.cf: one pipe(8) entry per account
    for (const auto& a : c.accounts)
        p.master.push_back(master_entry(c, a, site));
    return p;
}

std::string format_main(const PostfixConfig& p) {
    std::string out;
    for (const auto& m : p.main)
        out += m.name + " = " + m.value + "\n";
    return out;
}

std::string format_master(const PostfixConfig& p) {
    std::string out;
    for (const auto& e : p.master)
        out += e.folded();
    return out;
}

std::string format_map(const PostfixConfig& p) {
    std::size_t width = 0;
    for (const auto& l : p.map_lines)
        width = std::max(width, l.key.size());
    std::string out;
    for (const auto& l : p.map_lines)
        out += l.key + std::string(width + 2 - l.key.size(), ' ') + l.value + "\n";
    return out;
}

std::string format_all(const PostfixConfig& p) {
    std::string out;
    out += "# --- main.cf: set each line with " + postconf_cmd(p) +
           " -e 'LINE'\n"
           "# (smtpd_milters, non_smtpd_milters and sender_dependent_default_transport_maps:\n"
           "# keep any other entries you have; the milters run in the order listed)\n";
    out += format_main(p);
    out += "\n# --- master.cf: append (or " + postconf_cmd(p) +
           " -M NAME/unix='ENTRY'), then: postfix reload\n"
           "# One transport per account: its maxproc caps the account's concurrent deliveries\n"
           "# (Microsoft allows 3 SMTP connections or 4 Graph requests per mailbox).\n";
    out += format_master(p);
    out += "\n# --- " + p.map_file + ", then: " + postmap_cmd(p) + "\n";
    out += format_map(p);
    return out;
}

std::vector<Difference> compare(const PostfixConfig& wanted, const RunningPostfix& running) {
    std::vector<Difference> out;
    compare_main(wanted, running, out);
    compare_master(wanted, running, out);
    compare_map(wanted, running, out);
    return out;
}

std::map<std::string, std::string> parse_postconf_n(const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string name = normalise(line.substr(0, eq));
        std::string value = line.substr(eq + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
            value.pop_back();
        if (!name.empty()) out[name] = value;
    }
    return out;
}

std::map<std::string, std::vector<std::string>> parse_postconf_m(const std::string& text) {
    // postconf -M prints one line per entry (folded with -f: continuation
    // lines start with white space).
    std::map<std::string, std::vector<std::string>> out;
    std::vector<std::string> entry;
    auto flush = [&] {
        if (entry.size() >= 2) out[entry[0] + "/" + entry[1]] = entry;
        entry.clear();
    };
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line[0] != ' ' && line[0] != '\t') flush();
        for (auto& w : split_words(line, " \t\r"))
            entry.push_back(std::move(w));
    }
    flush();
    return out;
}

}  // namespace o365::ctl
