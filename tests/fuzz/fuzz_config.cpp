// libFuzzer target: the config parser must reject any input with ConfigError,
// never crash or throw anything else.
#include <cstddef>
#include <cstdint>
#include <string>

#include "accounts.hpp"
#include "config.hpp"
#include "error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        auto cfg = o365::parse_config(text, "fuzz.conf");
        o365::Resolver r(cfg);
        for (const auto& a : cfg->accounts)
            for (const auto& s : a.senders)
                (void)r.resolve(s.front() == '@' ? "x" + s : s);
    } catch (const o365::ConfigError&) {
    }
    return 0;
}
