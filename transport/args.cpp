#include "args.hpp"

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

}  // namespace

TransportArgs parse_transport_args(const std::vector<std::string>& argv) {
    TransportArgs a;
    bool seen_c = false, seen_f = false, seen_q = false, seen_n = false, dashdash = false;
    std::size_t i = 1;
    for (; i < argv.size(); ++i) {
        const std::string& arg = argv[i];
        if (arg == "--") {
            dashdash = true;
            ++i;
            break;
        }
        if (arg.size() < 2 || arg[0] != '-')
            usage("unexpected argument \"" + shown(arg) + "\" before --");
        char opt = arg[1];
        bool* seen = nullptr;
        std::string* target = nullptr;
        switch (opt) {
            case 'c':
                seen = &seen_c;
                target = &a.config_path;
                break;
            case 'f':
                seen = &seen_f;
                target = &a.sender;
                break;
            case 'q':
                seen = &seen_q;
                target = &a.queue_id;
                break;
            case 'n':
                seen = &seen_n;
                target = &a.nexthop;
                break;
            default:
                usage("unknown option \"" + shown(arg) + "\"");
        }
        if (*seen) usage(std::string("option -") + opt + " given twice");
        *seen = true;
        if (arg.size() > 2) {
            *target = arg.substr(2);
        } else {
            if (i + 1 >= argv.size()) usage(std::string("option -") + opt + " needs a value");
            *target = argv[++i];
        }
        if (opt != 'f' && has_control_chars(*target))
            usage(std::string("control character in the value of -") + opt + ": \"" +
                  shown(*target) + "\"");
    }
    if (!dashdash) usage("missing -- before the recipients");
    if (!seen_f) usage("missing -f SENDER");
    if (a.config_path.empty()) usage("empty -c FILE");
    a.recipients.assign(argv.begin() + static_cast<std::ptrdiff_t>(i), argv.end());
    if (a.recipients.empty()) usage("no recipient after --");
    return a;
}

}  // namespace o365
