// sender_rules: the rules about who a message is from, in one place for the
// milter (milter/policy.cpp) and the transport, so that both always give the
// same answer (docs/design.md sections "Config file" ([policy]
// null_sender, require_from_alignment) and "Transport command line"):
//   (a) null_sender_account: which account sends mail with the null sender <>,
//       or why such mail is refused;
//   (b) null_sender_from: the new header From of a null-sender message;
//   (c) alignment_refusal: whether every address of a From or Sender value is
//       one the account may send as (Exchange refuses the others with 5.2.252
//       SendAsDenied after the message was queued).
// Every address of a value counts (common/base/address.hpp header_addresses): a
// From "noreply@contoso.com, ceo@victim.example" is not aligned.
// Failure: refusals are values carrying their text and class; nothing throws
// beyond std::bad_alloc. Pure functions of their arguments: thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "accounts.hpp"
#include "config.hpp"
#include "error.hpp"

namespace o365 {

// (a) The account that sends mail with the null sender <>, or the refusal.
struct NullSenderAccount {
    const Account* account = nullptr;  // the sender's account; nullptr when refused
    // When refused: permanent (null_sender = reject, or no null_sender_account
    // set) or configuration (null_sender_account names no account; config
    // loading normally refuses such a file).
    ErrorClass refusal_class = ErrorClass::permanent;
    std::string refusal;  // when refused: why, in words (for a 5.7.1 reply or a DSN)

    explicit operator bool() const { return account != nullptr; }
};

NullSenderAccount null_sender_account(const Config& config);

// (b) The new value of one header From of a null-sender message sent by
// `account`, or nullopt when the account may send as every address of `value`
// (leave it unchanged). Otherwise the whole value becomes ONE mailbox, the
// account's: "Display <mailbox>" with the first mailbox's display name kept as
// written, else its comment ("MAILER-DAEMON@x (Mail Delivery System)") as a
// quoted phrase (kept bare when it holds encoded words, which a quoted string
// would stop from being decoded), else "<mailbox>". `value` may keep the
// leading space of the field body. With an empty `value` it gives the From to
// add to a message that has none. Used by the milter's policy and, through
// transport/message_stream.hpp's HeaderRewriter, by the transport.
std::optional<std::string> null_sender_from(const Resolver& resolver, const Account& account,
                                            std::string_view value);

// (c) nullopt when `account` may send as every address of the header `field`
// ("From", "Sender") value `value`; else the refusal text naming the first
// address it may not send as (or the value, when it holds no address), e.g.
// "header From ceo@victim.example is not an address account noreply may send as".
std::optional<std::string> alignment_refusal(const Resolver& resolver, const Account& account,
                                             std::string_view field, std::string_view value);

}  // namespace o365
