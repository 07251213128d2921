// aadsts: one-line hints for the Entra ID (AADSTS) error codes an operator of
// o365relay meets, shared by the token client, o365relayctl and the milter.
//
// Contract: aadsts_hint("7000215") or aadsts_hint("AADSTS7000215") returns what
// to fix, or "" for a code without a hint. A hint may contain the word ACCOUNT;
// the overload with an account name puts the name there. aadsts_is_temporary()
// says whether the code describes a condition that passes by itself (tenant
// throttling, request loop detection). Thread-safe (constant table).
#pragma once

#include <string>
#include <string_view>

namespace o365 {

std::string aadsts_hint(std::string_view code);
std::string aadsts_hint(std::string_view code, std::string_view account);
bool aadsts_is_temporary(std::string_view code);

// "AADSTS7000215" -> "7000215"; digits stay; anything else -> "".
std::string aadsts_number(std::string_view code);

}  // namespace o365
