#include "token_audience.hpp"

namespace o365 {

std::string_view audience_name(Audience a) noexcept {
    return a == Audience::graph ? "Graph" : "SMTP";
}

Audience audience_of(const Account& account) noexcept {
    return account.method == DeliveryMethod::graph ? Audience::graph : Audience::smtp;
}

std::string graph_scope(const Account& account, const GraphSettings& graph) {
    if (!graph.scope.empty()) return graph.scope;
    return account.flow == Flow::delegated ? kGraphDelegatedScope : kGraphAppOnlyScope;
}

Account account_for_audience(const Account& account, const GraphSettings& graph,
                             Audience audience) {
    Account a = account;
    if (audience == Audience::graph) {
        a.name += kGraphAudienceSuffix;
        a.entra.scope = graph_scope(account, graph);
    }
    return a;
}

}  // namespace o365
