#include "clouds.hpp"

#include <array>

namespace o365 {

namespace {

// Sources (docs/clouds.md has the table with the URL of each value):
// authorities: Microsoft Entra "National clouds" (identity platform); Graph
// endpoints: "Microsoft Graph national cloud deployments"; Exchange hosts and
// resources: Microsoft 365 endpoint documentation per cloud, where Microsoft
// documents them (the DoD and China SMTP hosts are the least certain values).
// clang-format off
constexpr std::array<CloudPreset, 4> kPresets = {{
    {.cloud = Cloud::global, .name = "global",
     .authority = "https://login.microsoftonline.com",
     .smtp_host = "smtp.office365.com",
     .smtp_app_scope = "https://outlook.office365.com/.default",
     .smtp_delegated_scope = "https://outlook.office.com/SMTP.Send offline_access",
     .graph_endpoint = "https://graph.microsoft.com",
     .graph_app_scope = "https://graph.microsoft.com/.default",
     .graph_delegated_scope = "https://graph.microsoft.com/Mail.Send offline_access"},
    {.cloud = Cloud::usgov, .name = "usgov",  // GCC High
     .authority = "https://login.microsoftonline.us",
     .smtp_host = "smtp.office365.us",
     .smtp_app_scope = "https://outlook.office365.us/.default",
     .smtp_delegated_scope = "https://outlook.office365.us/SMTP.Send offline_access",
     .graph_endpoint = "https://graph.microsoft.us",
     .graph_app_scope = "https://graph.microsoft.us/.default",
     .graph_delegated_scope = "https://graph.microsoft.us/Mail.Send offline_access"},
    {.cloud = Cloud::usgov_dod, .name = "usgov-dod",
     .authority = "https://login.microsoftonline.us",
     .smtp_host = "outlook-dod.office365.us",
     .smtp_app_scope = "https://outlook.office365.us/.default",
     .smtp_delegated_scope = "https://outlook.office365.us/SMTP.Send offline_access",
     .graph_endpoint = "https://dod-graph.microsoft.us",
     .graph_app_scope = "https://dod-graph.microsoft.us/.default",
     .graph_delegated_scope = "https://dod-graph.microsoft.us/Mail.Send offline_access"},
    {.cloud = Cloud::china, .name = "china",  // operated by 21Vianet
     .authority = "https://login.partner.microsoftonline.cn",
     .smtp_host = "partner.outlook.cn",
     .smtp_app_scope = "https://partner.outlook.cn/.default",
     .smtp_delegated_scope = "https://partner.outlook.cn/SMTP.Send offline_access",
     .graph_endpoint = "https://microsoftgraph.chinacloudapi.cn",
     .graph_app_scope = "https://microsoftgraph.chinacloudapi.cn/.default",
     .graph_delegated_scope = "https://microsoftgraph.chinacloudapi.cn/Mail.Send offline_access"},
}};
// clang-format on

constexpr std::array<std::string_view, 4> kNames = {kPresets[0].name, kPresets[1].name,
                                                    kPresets[2].name, kPresets[3].name};

}  // namespace

std::span<const CloudPreset> cloud_presets() {
    return kPresets;
}

const CloudPreset& cloud_preset(Cloud c) {
    for (const auto& p : kPresets)
        if (p.cloud == c) return p;
    return kPresets[0];  // unreachable: one row per Cloud
}

std::span<const std::string_view> cloud_names() {
    return kNames;
}

}  // namespace o365
