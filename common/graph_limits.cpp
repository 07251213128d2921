#include "graph_limits.hpp"

namespace o365 {

std::optional<long long> method_size_limit(const Account& account) {
    if (account.method == DeliveryMethod::graph) return kGraphMaxMessage;
    return std::nullopt;
}

std::string size_limit_refusal(const Account& account, long long size) {
    return "message of " + std::to_string(size) +
           " bytes is larger than the 3 MB Microsoft Graph accepts in one request (account " +
           account.name + "); use method = smtp for this account or lower max_message_size";
}

}  // namespace o365
