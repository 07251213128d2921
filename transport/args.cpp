#include "args.hpp"

#include <getopt.h>

#include <cstring>

#include "address.hpp"

namespace o365 {

namespace {

[[noreturn]] void usage(const std::string& why) {
    throw UsageError(why + " (" + kTransportUsage + ")");
}

// Printable form of an argument for an error message.
std::string shown(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 80)) {
        unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    return out;
}

// The options, declared once: getopt_long's tables are built from these.
// '+': stop at the first non-option (POSIX), ':': report a missing value as ':'.
constexpr const char* kShortOptions = "+:c:f:q:n:";
constexpr int kHelp = 'h' + 256, kVersion = 'V' + 256;
const struct option kLongOptions[] = {
    {"help", no_argument, nullptr, kHelp},
    {"version", no_argument, nullptr, kVersion},
    {nullptr, 0, nullptr, 0},
};

// Where the value of a one-letter option goes.
struct ValueOption {
    char letter;
    std::string TransportArgs::*target;
    bool seen = false;
};

// argv as getopt_long wants it: mutable, NUL-terminated copies.
struct CArgv {
    explicit CArgv(const std::vector<std::string>& argv) {
        for (const auto& a : argv)
            storage.emplace_back(a.c_str(), a.c_str() + a.size() + 1);
        for (auto& s : storage)
            pointers.push_back(s.data());
        pointers.push_back(nullptr);
    }
    int argc() const { return static_cast<int>(storage.size()); }
    std::vector<std::vector<char>> storage;
    std::vector<char*> pointers;
};

// --help/--version: only alone (argv is exactly the program and the option).
TransportMode alone(TransportMode m, int argc) {
    if (argc != 2) usage("--help and --version must be given alone");
    return m;
}

}  // namespace

TransportArgs parse_transport_args(const std::vector<std::string>& argv) {
    TransportArgs a;
    ValueOption values[] = {{'c', &TransportArgs::config_path, false},
                            {'f', &TransportArgs::sender, false},
                            {'q', &TransportArgs::queue_id, false},
                            {'n', &TransportArgs::nexthop, false}};
    CArgv c(argv.empty() ? std::vector<std::string>{"o365relay-transport"} : argv);
    char** cv = c.pointers.data();
    opterr = 0;
    optind = 0;             // glibc: a full re-initialisation for every parse
    int last_consumed = 0;  // index of the last argv element an option used
    for (int opt; (opt = getopt_long(c.argc(), cv, kShortOptions, kLongOptions, nullptr)) != -1;
         last_consumed = optind - 1) {
        if (opt == kHelp || opt == kVersion) {
            TransportArgs info;
            info.mode =
                alone(opt == kHelp ? TransportMode::help : TransportMode::version, c.argc());
            return info;
        }
        if (opt == ':') usage(std::string("option -") + char(optopt) + " needs a value");
        ValueOption* v = nullptr;
        for (auto& candidate : values)
            if (opt == candidate.letter) v = &candidate;
        if (!v)
            usage("unknown option \"" +
                  shown(optopt > 0 ? std::string("-") + char(optopt) : cv[optind - 1]) + "\"");
        if (v->seen) usage(std::string("option -") + v->letter + " given twice");
        v->seen = true;
        a.*(v->target) = optarg;
        if (v->letter != 'f' && has_control_chars(a.*(v->target)))
            usage(std::string("control character in the value of -") + v->letter + ": \"" +
                  shown(a.*(v->target)) + "\"");
    }
    // getopt_long stops after "--" (optind past it) or at the first non-option.
    bool dashdash = optind - 1 > last_consumed && std::strcmp(cv[optind - 1], "--") == 0;
    if (!dashdash && optind < c.argc())
        usage("unexpected argument \"" + shown(cv[optind]) + "\" before --");
    if (!dashdash) usage("missing -- before the recipients");
    if (!values[1].seen) usage("missing -f SENDER");
    if (a.config_path.empty()) usage("empty -c FILE");
    a.recipients.assign(argv.begin() + optind, argv.end());
    if (a.recipients.empty()) usage("no recipient after --");
    return a;
}

}  // namespace o365
