// ctl: the o365relayctl subcommands. Each takes the parsed global options and
// its own arguments, prints for the administrator on stdout (errors on
// stderr), and returns an exit status:
//   0 ok, 1 a check failed (details printed), 64 usage error,
//   75 temporary failure (Entra or Office 365 unreachable: try again),
//   78 configuration error (the config file or a credential file is wrong).
// Commands never print a token, a refresh token or a secret.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.hpp"

namespace o365::ctl {

inline constexpr int kOk = 0;
inline constexpr int kFailed = 1;
inline constexpr int kUsage = 64;
inline constexpr int kTempfail = 75;
inline constexpr int kConfig = 78;

struct Globals {
    std::string config_path = kDefaultConfigPath;
    std::string transport_path = "/usr/sbin/o365relay-transport";
};

using Args = std::vector<std::string>;

int cmd_check(const Globals& g, const Args& args);
int cmd_token(const Globals& g, const Args& args);
int cmd_login(const Globals& g, const Args& args);
int cmd_send_test(const Globals& g, const Args& args);
int cmd_status(const Globals& g, const Args& args);
int cmd_metrics(const Globals& g, const Args& args);
int cmd_postfix_config(const Globals& g, const Args& args);

// Loads the config; on error prints it and returns nullptr (caller exits 78).
std::shared_ptr<const Config> load_or_report(const Globals& g);

// The accounts named (one, or all when `name` is empty); prints an error and
// returns empty when the name is unknown.
std::vector<const Account*> select_accounts(const Config& c, const std::string& name);

// The common start of a command that takes [ACCOUNT]: --help (exit 0), more
// than one argument (usage, 64), the config (78 when it cannot be used), the
// account named (64 when unknown) or all of them. `exit` is -1 when the command
// goes on with `config` and `accounts`.
struct AccountCommand {
    int exit = -1;
    std::shared_ptr<const Config> config;
    std::vector<const Account*> accounts;
};
AccountCommand start_account_command(const Globals& g, const Args& args, const char* help);

// True when args has -h or --help.
bool wants_help(const Args& args);

}  // namespace o365::ctl
