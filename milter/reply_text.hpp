// reply_text: makes a reply text safe for smfi_setreply(). libmilter refuses
// CR/LF in the text and treats it as a format string ('%' must be doubled).
//
// Contract: every byte < 0x20 or 0x7f becomes a space, every '%' becomes "%%",
// and the result is cut (on a UTF-8 character boundary, marked "...") so that it
// stays within 400 bytes, well inside an SMTP reply line. Pure, thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace o365 {

std::string milter_reply_text(std::string_view text);

}  // namespace o365
