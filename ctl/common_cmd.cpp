#include <cstdio>

#include "ctl.hpp"
#include "error.hpp"
#include "privileges.hpp"

namespace o365::ctl {

std::shared_ptr<const Config> load_or_report(const Globals& g) {
    try {
        auto cfg = load_config(g.config_path);
        // The token cache must stay owned by the service user: run as it.
        drop_to_user(cfg->relay.user);
        return cfg;
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "o365relayctl: %s\n", e.what());
        return nullptr;
    }
}

std::vector<const Account*> select_accounts(const Config& c, const std::string& name) {
    std::vector<const Account*> out;
    if (name.empty()) {
        for (const auto& a : c.accounts)
            out.push_back(&a);
        return out;
    }
    if (const Account* a = c.find_account(name)) {
        out.push_back(a);
    } else {
        std::string names;
        for (const auto& a : c.accounts)
            names += (names.empty() ? "" : ", ") + a.name;
        std::fprintf(stderr, "o365relayctl: no account named '%s' in %s (accounts: %s)\n",
                     name.c_str(), c.path.c_str(), names.c_str());
    }
    return out;
}

bool wants_help(const Args& args) {
    for (const auto& a : args)
        if (a == "-h" || a == "--help") return true;
    return false;
}

AccountCommand start_account_command(const Globals& g, const Args& args, const char* help) {
    AccountCommand c;
    if (wants_help(args)) {
        std::fputs(help, stdout);
        c.exit = kOk;
        return c;
    }
    if (args.size() > 1) {
        std::fputs(help, stderr);
        c.exit = kUsage;
        return c;
    }
    c.config = load_or_report(g);
    if (!c.config) {
        c.exit = kConfig;
        return c;
    }
    // A configuration always has an account (config.hpp): an empty list here
    // means the name given is unknown (select_accounts() said so).
    c.accounts = select_accounts(*c.config, args.empty() ? "" : args[0]);
    if (c.accounts.empty()) c.exit = kUsage;
    return c;
}

}  // namespace o365::ctl
