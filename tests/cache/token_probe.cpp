// token_probe: drives one TokenCache operation in its own process for the
// multi-process cache tests (tests/cache/*.py).
//
//   token_probe -c CONF -a ACCOUNT [--op get|refresh|force|store|peek]
//               [--source counting:DIR] [--source-sleep-ms N] [--expires-in N]
//               [--rejected TOKEN] [--store-access T --store-refresh RT]
//               [--start-at UNIX_MS] [--out FILE]
//
// Prints one line: "ok digest=<first 16 hex of SHA-256(token)> expires_at=<n>"
// (never the token; --out FILE receives the token itself), or
// "error <class>: <message>". Exit: 0 ok, 75 temporary, 78 configuration,
// 69 permanent, 64 usage, 70 anything else.
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "config.hpp"
#include "counting_source.hpp"
#include "log.hpp"
#include "token_cache.hpp"

using namespace o365;

namespace {

std::string digest(const std::string& token) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(token.data(), token.size(), md, &n, EVP_sha256(), nullptr);
    char hex[65];
    for (unsigned i = 0; i < 8; ++i)
        std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return std::string(hex, 16);
}

int exit_for(ErrorClass c) {
    switch (c) {
        case ErrorClass::temporary:
            return 75;
        case ErrorClass::configuration:
            return 78;
        case ErrorClass::permanent:
            return 69;
    }
    return 70;
}

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "token_probe: " << why << "\n";
    std::exit(64);
}

std::shared_ptr<TokenSource> make_source(const std::map<std::string, std::string>& o) {
    auto get = [&](const std::string& k, const std::string& d) {
        auto it = o.find(k);
        return it == o.end() ? d : it->second;
    };
    const std::string spec = get("source", "");
    const int sleep_ms = std::stoi(get("source-sleep-ms", "0"));
    const std::int64_t expires_in = std::stoll(get("expires-in", "3600"));
    if (spec.rfind("counting:", 0) == 0)
        return std::make_shared<test::CountingSource>(spec.substr(9), sleep_ms, expires_in);
    usage("--source must be counting:DIR");
}

}  // namespace

int main(int argc, char** argv) {
    std::map<std::string, std::string> o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) usage("missing value for " + a);
        if (a == "-c")
            o["config"] = argv[++i];
        else if (a == "-a")
            o["account"] = argv[++i];
        else if (a.rfind("--", 0) == 0)
            o[a.substr(2)] = argv[++i];
        else
            usage("unknown argument " + a);
    }
    if (!o.count("config") || !o.count("account")) usage("-c CONF and -a ACCOUNT are required");
    const std::string op = o.count("op") ? o["op"] : "get";
    try {
        auto cfg = load_config(o["config"]);
        log_init(cfg->relay.log, cfg->relay.log_level, "token_probe");
        const Account* acc = cfg->find_account(o["account"]);
        if (!acc) usage("no account " + o["account"]);
        if (o.count("start-at")) {
            std::chrono::system_clock::time_point t{
                std::chrono::milliseconds(std::stoll(o["start-at"]))};
            std::this_thread::sleep_until(t);
        }
        TokenCache cache(cfg->relay.state_dir, op == "peek" ? nullptr : make_source(o));
        AccessToken tok;
        if (op == "get") {
            tok = cache.get(*acc);
        } else if (op == "refresh") {
            tok = cache.refresh(*acc, o["rejected"]);
        } else if (op == "force") {
            tok = cache.force_refresh(*acc);
        } else if (op == "store") {
            TokenGrant g{o["store-access"],
                         std::stoll(o.count("expires-in") ? o["expires-in"] : "3600"),
                         o["store-refresh"]};
            cache.store(*acc, g);
            tok = AccessToken{g.access_token, 0};
        } else if (op == "peek") {
            auto e = cache.peek(*acc);
            if (!e) {
                std::cout << "none\n";
                return 1;
            }
            tok = AccessToken{e->access_token, e->expires_at};
        } else {
            usage("unknown --op " + op);
        }
        if (o.count("out")) {
            std::ofstream f(o["out"], std::ios::trunc);
            f << tok.value;
        }
        std::cout << "ok digest=" << digest(tok.value) << " expires_at=" << tok.expires_at << "\n";
        return 0;
    } catch (const Error& e) {
        std::cout << "error " << to_string(e.error_class()) << ": " << redact(e.what()) << "\n";
        return exit_for(e.error_class());
    } catch (const std::exception& e) {
        std::cout << "error internal: " << redact(e.what()) << "\n";
        return 70;
    }
}
