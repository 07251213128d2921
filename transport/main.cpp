// o365relay-transport: Postfix pipe(8) delivery agent (docs/design.md section
// "Transport command line").
//
// Contract: prints EXACTLY ONE line on stdout (an enhanced status code, then
// the reason or the server's reply) and exits with the sysexits status that
// agrees with it (0, 75, 65, 67, 69); nothing else ever goes to stdout, and
// nothing goes to stderr unless `log = stderr` is configured (pipe(8) would put
// it in the DSN). Every exception is caught; a usage or configuration error
// (including a file without any account: a directory or an empty file as -c)
// defers (4.3.5) and says what to fix. Until the configuration is loaded, log
// lines go to syslog. `--help` and `--version`, given alone, print on stdout
// and exit 0 without reading the configuration or the message.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "accounts.hpp"
#include "args.hpp"
#include "config.hpp"
#include "counters.hpp"
#include "delivery.hpp"
#include "delivery_status.hpp"
#include "log.hpp"
#include "oauth.hpp"
#include "tls.hpp"
#include "token_cache.hpp"

namespace {

constexpr const char* kIdent = "o365relay-transport";

int finish(const o365::Outcome& o) {
    std::string line = o.status_line;
    for (char& c : line)
        if (c == '\n' || c == '\r') c = ' ';
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
    return o.exit_status;
}

// A configuration problem: Postfix must defer (4.3.5), never bounce, and the
// reason says what to fix. Logged to syslog or the configured log.
int config_failure(const o365::TransportArgs& ta, o365::Cause cause, const std::string& what) {
    using namespace o365;
    Outcome o = decide(local_failure(cause, Stage::none, what));
    log_error((ta.queue_id.empty() ? "NOQUEUE" : ta.queue_id) + ": " + o.status_line);
    return finish(o);
}

// The configuration the delivery needs, or nullptr after config_failure().
std::shared_ptr<const o365::Config> load_usable_config(const o365::TransportArgs& ta, int& status) {
    using namespace o365;
    std::shared_ptr<const Config> config;
    try {
        config = load_config(ta.config_path);
    } catch (const std::exception& e) {
        status = config_failure(ta, Cause::config,
                                std::string("configuration error: ") + e.what() +
                                    "; fix the file named by -c in master.cf (check it with "
                                    "o365relayctl check)");
        return nullptr;
    }
    // A file without an account (an empty file, a directory) is a configuration
    // error of load_config() itself (docs/design.md section 3).
    return config;
}

// --help / --version: the text on stdout, exit 0; nothing else happens.
int print_and_exit(o365::TransportMode mode) {
    std::string text = mode == o365::TransportMode::help
                           ? std::string(o365::kTransportHelp)
                           : std::string(kIdent) + " " + O365_VERSION + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : o365::kExTempFail;
}

int run(int argc, char** argv) {
    using namespace o365;
    // 1. The command line: --help and --version print before anything else
    //    happens (no log, no configuration, no connection).
    TransportArgs ta;
    std::string usage_error;
    try {
        ta = parse_transport_args(std::vector<std::string>(argv, argv + argc));
    } catch (const UsageError& e) {
        usage_error = e.what();
    }
    if (usage_error.empty() && ta.mode != TransportMode::deliver) return print_and_exit(ta.mode);
    log_init("syslog", LogLevel::info, kIdent);
    if (!usage_error.empty())
        return config_failure(ta, Cause::usage,
                              usage_error + "; fix the o365 entry's argv in master.cf");
    // 2. The configuration.
    int status = kExTempFail;
    std::shared_ptr<const Config> config = load_usable_config(ta, status);
    if (!config) return status;
    log_init(config->relay.log, config->relay.log_level, kIdent);
    // 3. The delivery.
    Resolver resolver(config);
    TokenCache cache(config->relay.state_dir, std::make_shared<EntraClient>());
    CacheTokenProvider tokens(cache);
    DeliveryReport rep = deliver(*config, resolver, tokens, ta, STDIN_FILENO);
    // For `o365relayctl status` / `metrics` (counters.hpp: never throws, microseconds).
    if (!rep.account.empty())
        Counters(config->relay.state_dir)
            .record_delivery(rep.account, rep.outcome, rep.recipients.size());
    // Postfix logs sent, deferred and bounced alike at info level.
    for (const auto& l : rep.log_lines())
        log_info(l);
    return finish(rep.outcome);
}

}  // namespace

int main(int argc, char** argv) {
    o365::openssl_init_short_lived();
    ::signal(SIGPIPE, SIG_IGN);
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        return finish(o365::decide(o365::local_failure(
            o365::Cause::internal, o365::Stage::none, std::string("internal error: ") + e.what())));
    } catch (...) {
        return finish(o365::decide(o365::local_failure(o365::Cause::internal, o365::Stage::none,
                                                       "internal error: unknown exception")));
    }
}
