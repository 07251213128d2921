#include "aadsts.hpp"

#include <algorithm>
#include <cctype>

namespace o365 {

namespace {

struct Entry {
    std::string_view code;
    std::string_view hint;
    bool temporary;
};

// Looked up linearly: the table is small.
constexpr Entry kTable[] = {
    {"50034", "the user account does not exist in the tenant: check the mailbox and tenant", false},
    {"50076",
     "multi-factor authentication is required: run `o365relayctl login ACCOUNT` and complete MFA, "
     "or have the administrator adjust the policy",
     false},
    {"50079",
     "the user must enrol in multi-factor authentication, then run `o365relayctl login "
     "ACCOUNT`",
     false},
    {"50173",
     "the grant was revoked (password change or administrator revocation): run `o365relayctl "
     "login ACCOUNT`",
     false},
    {"50196",
     "Entra detected a request loop from this client; it clears after a few minutes (check that "
     "tokens are cached and not requested for every message)",
     true},
    {"500011",
     "the resource principal is not in the tenant: check scope (app-only: "
     "https://outlook.office365.com/.default) and that Exchange Online is licensed in the tenant",
     false},
    {"53003",
     "blocked by Conditional Access: an administrator must allow this application or this host "
     "in the Conditional Access policies",
     false},
    {"65001",
     "no consent: an administrator must grant admin consent for the application's API permissions "
     "(SMTP.SendAsApp for app-only, SMTP.Send for delegated)",
     false},
    {"700016",
     "the application (client_id) was not found in the tenant: check client_id and tenant, and "
     "that the app is registered or consented in that tenant",
     false},
    {"700024",
     "the client assertion is outside its valid time range: check this host's clock (NTP)", false},
    {"700027",
     "the assertion signature was not accepted: upload certificate_file to the app registration "
     "(Certificates & secrets) and check that private_key_file belongs to it",
     false},
    {"70008", "the refresh token has expired or was already used: run `o365relayctl login ACCOUNT`",
     false},
    {"700082", "the refresh token has expired due to inactivity: run `o365relayctl login ACCOUNT`",
     false},
    {"70011",
     "the scope is invalid: app-only needs https://outlook.office365.com/.default, delegated needs "
     "https://outlook.office.com/SMTP.Send offline_access",
     false},
    {"7000112", "the application is disabled in the tenant: an administrator must enable it",
     false},
    {"7000215",
     "the client secret is wrong: client_secret_file must hold the secret's Value, not its Secret "
     "ID",
     false},
    {"7000218",
     "the app needs a credential: set client_secret_file or certificate_file + private_key_file, "
     "or allow public client flows in the app registration for delegated accounts",
     false},
    {"7000222",
     "the client secret has expired: create a new one in the app registration (Certificates & "
     "secrets) and update client_secret_file, or switch to a certificate",
     false},
    {"90002", "the tenant was not found: check [entra] tenant", false},
    {"90055", "Entra is throttling the tenant (too many requests); the relay retries later", true},
    {"900023", "the tenant name is invalid: check [entra] tenant", false},
};

const Entry* find(std::string_view code) {
    std::string n = aadsts_number(code);
    if (n.empty()) return nullptr;
    for (const auto& e : kTable)
        if (e.code == n) return &e;
    return nullptr;
}

}  // namespace

std::string aadsts_number(std::string_view code) {
    if (code.size() >= 6) {
        std::string p(code.substr(0, 6));
        std::transform(p.begin(), p.end(), p.begin(),
                       [](unsigned char c) { return std::toupper(c); });
        if (p == "AADSTS") code.remove_prefix(6);
    }
    if (code.empty() || code.size() > 12) return {};
    for (char c : code)
        if (!std::isdigit(static_cast<unsigned char>(c))) return {};
    return std::string(code);
}

std::string aadsts_hint(std::string_view code) {
    const Entry* e = find(code);
    return e ? std::string(e->hint) : std::string();
}

std::string aadsts_hint(std::string_view code, std::string_view account) {
    std::string h = aadsts_hint(code);
    if (account.empty()) return h;
    for (std::size_t p = h.find("ACCOUNT"); p != std::string::npos;
         p = h.find("ACCOUNT", p + account.size()))
        h.replace(p, 7, account);
    return h;
}

bool aadsts_is_temporary(std::string_view code) {
    const Entry* e = find(code);
    return e && e->temporary;
}

}  // namespace o365
