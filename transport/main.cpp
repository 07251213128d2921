// o365relay-transport: Postfix pipe(8) delivery agent (DESIGN.md section 4).
//
// Contract: prints EXACTLY ONE line on stdout (an enhanced status code, then
// the reason or the server's reply) and exits with the sysexits status that
// agrees with it (0, 75, 65, 67, 69); nothing else ever goes to stdout, and
// nothing goes to stderr unless `log = stderr` is configured (pipe(8) would put
// it in the DSN). Every exception is caught; a usage or configuration error
// defers (4.3.5). Until the configuration is loaded, log lines go to syslog.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "accounts.hpp"
#include "args.hpp"
#include "config.hpp"
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

int run(int argc, char** argv) {
    using namespace o365;
    std::vector<std::string> args(argv, argv + argc);
    TransportArgs ta;
    try {
        ta = parse_transport_args(args);
    } catch (const UsageError& e) {
        Outcome o = decide(local_failure(Cause::usage, Stage::none, e.what()));
        log_error(o.status_line);
        return finish(o);
    }
    std::shared_ptr<const Config> config;
    try {
        config = load_config(ta.config_path);
    } catch (const std::exception& e) {
        Outcome o = decide(local_failure(Cause::config, Stage::none,
                                         std::string("configuration error: ") + e.what()));
        log_error((ta.queue_id.empty() ? "NOQUEUE" : ta.queue_id) + ": " + o.status_line);
        return finish(o);
    }
    log_init(config->relay.log, config->relay.log_level, kIdent);
    Resolver resolver(config);
    TokenCache cache(config->relay.state_dir, std::make_shared<EntraClient>());
    CacheTokenProvider tokens(cache);
    DeliveryReport rep = deliver(*config, resolver, tokens, ta, STDIN_FILENO);
    // Postfix logs sent, deferred and bounced alike at info level.
    for (const auto& l : rep.log_lines())
        log_info(l);
    return finish(rep.outcome);
}

}  // namespace

int main(int argc, char** argv) {
    o365::openssl_init_short_lived();
    ::signal(SIGPIPE, SIG_IGN);
    o365::log_init("syslog", o365::LogLevel::info, kIdent);
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
