#include "graph_envelope.hpp"

#include <set>

#include "address.hpp"

namespace o365 {

namespace {

using Keys = std::set<std::string>;

Keys keys_of(const std::vector<std::string>& addrs) {
    Keys out;
    for (const auto& a : addrs)
        out.insert(lower_ascii(a));
    return out;
}

bool in(const Keys& k, const std::string& key) {
    return k.count(key) != 0;
}

}  // namespace

GraphRoute plan_route(const std::vector<std::string>& envelope, const HeaderRecipients& headers) {
    const Keys e = keys_of(envelope);
    const Keys to = keys_of(headers.to), cc = keys_of(headers.cc);
    Keys h = to;
    h.insert(cc.begin(), cc.end());
    for (const auto& b : headers.bcc)
        h.insert(lower_ascii(b));
    GraphRoute r;
    r.send_mail = headers.complete && h == e;
    Keys seen;
    for (const auto& rcpt : envelope) {
        std::string k = lower_ascii(rcpt);
        if (!seen.insert(k).second) continue;
        if (in(to, k)) {
            r.to.push_back(rcpt);
        } else if (in(cc, k)) {
            r.cc.push_back(rcpt);
        } else {
            r.bcc.push_back(rcpt);
        }
    }
    return r;
}

}  // namespace o365
