// clouds: the Microsoft 365 clouds that `[entra] cloud` names, as ONE table of
// presets: per cloud the Entra authority, the Exchange Online SMTP host, the
// SMTP scopes (app-only and delegated), the Microsoft Graph endpoint and the
// Graph scopes (docs/clouds.md lists every value with its source). The config
// applies a preset at the end of parsing, only to the keys the file does not
// set (docs/design.md section "Operations"): an explicit authority, host,
// scope or endpoint always wins.
//
// Failure: none; cloud_preset() of an enum value always has a row (the table
// has one row per Cloud, in declaration order; test_clouds checks it).
// Thread-safe: the table is immutable, the functions are pure.
#pragma once

#include <span>
#include <string_view>

namespace o365 {

// In the order of the choices of `[entra] cloud` (cloud_names()).
enum class Cloud { global, usgov, usgov_dod, china };

struct CloudPreset {
    Cloud cloud;
    std::string_view name;                   // as written in the file: "global", "usgov", ...
    std::string_view authority;              // [entra] authority
    std::string_view smtp_host;              // [smtp] host
    std::string_view smtp_app_scope;         // [entra] scope, flow client_credentials
    std::string_view smtp_delegated_scope;   // [entra] scope, flow delegated
    std::string_view graph_endpoint;         // [graph] endpoint
    std::string_view graph_app_scope;        // [graph] scope, flow client_credentials
    std::string_view graph_delegated_scope;  // [graph] scope, flow delegated

    std::string_view smtp_scope(bool delegated) const {
        return delegated ? smtp_delegated_scope : smtp_app_scope;
    }
    std::string_view graph_scope(bool delegated) const {
        return delegated ? graph_delegated_scope : graph_app_scope;
    }
};

// Every preset, one per Cloud, in declaration order.
std::span<const CloudPreset> cloud_presets();

// The preset of cloud C.
const CloudPreset& cloud_preset(Cloud c);

// "global", "usgov", "usgov-dod", "china": the choices of `[entra] cloud`,
// in declaration order.
std::span<const std::string_view> cloud_names();

}  // namespace o365
