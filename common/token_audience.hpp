// token_audience: which service a token is for, and the account as the token
// cache sees it for that service (docs/design.md section "Graph delivery").
//
// Contract:
// - Audience::smtp: Exchange Online SMTP AUTH (outlook.office365.com); the
//   account as configured: cache entry tokens/<account>.json, the [entra] scope.
// - Audience::graph: Microsoft Graph; a copy of the account named
//   "<account>+graph" (entry tokens/<account>+graph.json, lock
//   <account>+graph.lock: '+' is not allowed in account names, so no collision)
//   whose scope is the [graph] scope, or when that is empty the per-flow default
//   (kGraphAppOnlyScope, kGraphDelegatedScope). The scope is part of the
//   credential fingerprint, so the two entries never mix. Everything else
//   (credentials, refresh window, timeouts) is the account's.
// - audience_of(): the audience the account's delivery method needs. A token is
//   only ever sent to the service of the audience it was obtained for.
// Failure: none (pure functions). Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "config.hpp"

namespace o365 {

enum class Audience { smtp, graph };

// "SMTP", "Graph": for messages.
std::string_view audience_name(Audience a) noexcept;

// The audience the account's method (smtp | graph) needs.
Audience audience_of(const Account& account) noexcept;

// The Graph token's scope for the account: [graph] scope, else by flow.
std::string graph_scope(const Account& account, const GraphSettings& graph);

// The account as the token cache sees it for `audience` (see the contract).
Account account_for_audience(const Account& account, const GraphSettings& graph, Audience audience);

// The suffix of the Graph entry's name: "+graph".
inline constexpr std::string_view kGraphAudienceSuffix = "+graph";

}  // namespace o365
