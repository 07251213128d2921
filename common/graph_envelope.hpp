// graph_envelope: Microsoft Graph has no envelope: it sends to the To, Cc and
// Bcc of the message. This unit decides how one delivery reaches exactly its
// envelope recipients, each once, and nobody else (docs/design.md section
// "Graph delivery").
//
// Contract (E = the envelope recipients, H = To, Cc and Bcc of the headers;
// addresses compare case-insensitively):
// - set(H) == set(E) and the header section was read completely: sendMail, the
//   message as it is, one request.
// - otherwise the draft route: the draft's lists become
//   to = E ∩ To, cc = (E ∩ Cc) \ To, bcc = E \ (To ∪ Cc), each in envelope order,
//   with the envelope's spelling, without duplicates.
// Pure functions, thread-safe; never throws (beyond std::bad_alloc).
#pragma once

#include <string>
#include <vector>

namespace o365 {

// The recipients named by the message's header section.
struct HeaderRecipients {
    std::vector<std::string> to, cc, bcc;
    // false when the header section was too large to read to its end: then the
    // headers may name more recipients than these, and only the draft route is safe.
    bool complete = true;
};

struct GraphRoute {
    bool send_mail = false;                // true: sendMail; false: draft, PATCH the lists, send
    std::vector<std::string> to, cc, bcc;  // the draft's lists (send_mail: unused)
};

GraphRoute plan_route(const std::vector<std::string>& envelope, const HeaderRecipients& headers);

}  // namespace o365
