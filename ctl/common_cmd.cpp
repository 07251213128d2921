#include <cstdio>

#include "ctl.hpp"
#include "error.hpp"

namespace o365::ctl {

std::shared_ptr<const Config> load_or_report(const Globals& g) {
    try {
        return load_config(g.config_path);
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

}  // namespace o365::ctl
