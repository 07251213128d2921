// counters: the per-account delivery counters of docs/design.md section
// Operations, kept in <state_dir>/counters/<account>.cnt by every process (the
// transport after each delivery, the token cache at each token request) and
// read by `o365relayctl status` and `o365relayctl metrics`.
//
// Contract:
// - What is counted, per account: deliveries sent / deferred / bounced (total,
//   and deferred / bounced by reason class), throttle replies by kind (SMTP
//   432 4.3.2, SMTP 4.7.500 server busy, Graph 429), token requests and token
//   request failures, and two rolling windows: recipients of sent deliveries
//   in the last 24 h (per-minute buckets, 1440 of them; Exchange's limit is
//   10,000) and sent messages in the last minute (per-second buckets, 60 of
//   them; the limit is 30). Sent / deferred / bounced are also kept per minute
//   for the 24 h view. The last failed delivery (its status line, reason
//   class and time) is kept for `status`.
// - THE classification of a delivery's outcome into a result and a reason
//   class is classify_delivery() (table-tested in tests/unit/test_counters.cpp);
//   the throttle replies are recognised by classify_throttle().
// - Storage: ONE fixed-layout binary file per account, updated in place under
//   a brief exclusive flock(2) (read the record, change it, write it back;
//   microseconds, never across a delivery). Why not a small file per account
//   rewritten atomically (temp + rename)? That costs a file creation, a rename
//   and a directory update per delivery and still needs a lock to not lose a
//   concurrent increment; the in-place update needs neither. A process that
//   dies in the middle of an update loses at most that update: every field is
//   an aligned 8-byte (or smaller) value that never straddles a page, and the
//   bytes written back that were not changed equal the file's. Readers take a
//   shared flock. A file of another size or without the magic (an older
//   layout, a truncated file) is reset to zero with a warning in the log.
// - Trust, as for the token cache: the directory is created 0700, files 0600;
//   a symlink, a non-regular file, a file or directory owned by another user
//   is refused (Error temporary naming the path); a file of ours that group or
//   other may access is set back to 0600 with a warning.
// - Failure: the record_*() functions never throw and never block a delivery
//   for long: when the file cannot be opened, locked within one second, read
//   or written, the count is lost and a warning is logged (no secret in it).
//   read() throws Error (temporary) for a refused or unreadable file; a
//   missing file reads as all zeros.
// Thread-safe: a Counters object holds no mutable state; concurrent updates
// from threads and processes are serialised by the file lock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace o365 {

// Declared in delivery_status.hpp and smtp_reply.hpp (not included here: the
// token cache includes this header and has a Failure of its own).
struct Outcome;
struct SmtpReply;

// Why a delivery did not succeed, as an administrator groups it.
enum class ReasonClass {
    network,    // connect, DNS, TLS, lost connection, timeouts, protocol, greeting/EHLO replies
    token,      // no access token (Entra), AUTH refused the token
    throttle,   // Microsoft's throttling replies (432 4.3.2, 4.7.500 server busy, Graph 429)
    account,    // account- or tenant-level blocks (SMTP AUTH disabled, quotas, 5.2.25x, ...)
    sender,     // this sender refused (Send As denied, MAIL FROM refused, no account may send)
    recipient,  // a recipient refused or invalid
    content,    // the message refused (size, content, SMTPUTF8)
    config,     // local configuration (4.3.5: usage, config file, account mismatch)
    other,      // internal errors, unreadable input, anything unrecognised
};
inline constexpr std::size_t kReasonClasses = 9;
std::string_view reason_name(ReasonClass c) noexcept;

enum class ThrottleKind {
    smtp_concurrency,  // 432 4.3.2 Concurrent connections limit exceeded
    smtp_busy,         // 4.7.500 Server busy
    graph_429,         // Graph 429 Too Many Requests
};
inline constexpr std::size_t kThrottleKinds = 3;
// "smtp_4.3.2", "smtp_4.7.500", "graph_429" (also the metrics label).
std::string_view throttle_name(ThrottleKind k) noexcept;

enum class DeliveryResult { sent, deferred, bounced };
std::string_view result_name(DeliveryResult r) noexcept;

struct DeliveryClass {
    DeliveryResult result = DeliveryResult::deferred;
    ReasonClass reason = ReasonClass::other;  // meaningless when sent
    std::optional<ThrottleKind> throttle;     // a throttle reply of the server
};

// The one classification of a delivery's outcome (exit status and status
// line, as decide() or delivered() made it). Pure, thread-safe.
DeliveryClass classify_delivery(const Outcome& outcome);

// The SMTP throttle replies: 432 / 4.3.2 (concurrent connections) and
// 4.7.500 (server busy). nullopt for any other reply.
std::optional<ThrottleKind> classify_throttle(const SmtpReply& reply);

// What read() returns.
struct CounterSnapshot {
    std::uint64_t sent_total = 0;
    std::array<std::uint64_t, kReasonClasses> deferred_total{};  // by ReasonClass
    std::array<std::uint64_t, kReasonClasses> bounced_total{};
    std::array<std::uint64_t, kThrottleKinds> throttles_total{};  // by ThrottleKind
    std::uint64_t token_requests_total = 0;
    std::uint64_t token_failures_total = 0;
    std::uint64_t recipients_total = 0;  // recipients of sent deliveries
    // Rolling windows at the time of the read.
    std::uint64_t sent_24h = 0;
    std::uint64_t deferred_24h = 0;
    std::uint64_t bounced_24h = 0;
    std::uint64_t recipients_24h = 0;
    std::uint64_t messages_last_minute = 0;
    // The last deferred or bounced delivery (at == 0: none).
    std::int64_t last_failure_at = 0;
    DeliveryResult last_failure_result = DeliveryResult::deferred;
    ReasonClass last_failure_reason = ReasonClass::other;
    std::string last_failure;  // its status line

    std::uint64_t deferred_sum() const;
    std::uint64_t bounced_sum() const;
    std::uint64_t throttles_sum() const;
};

// Exchange Online's sending limits per mailbox, which the windows are shown against.
inline constexpr std::uint64_t kRecipientsPerDay = 10000;
inline constexpr std::uint64_t kMessagesPerMinute = 30;

class Counters {
  public:
    // Unix time in seconds. Production uses the system clock; tests inject one.
    using Clock = std::function<std::int64_t()>;

    explicit Counters(std::string state_dir, Clock clock = {});

    // One finished delivery: its class (classify_delivery), a throttle reply
    // among it, and for a sent one its recipients (24 h window) and the
    // message (minute window). Never throws.
    void record_delivery(const std::string& account, const Outcome& outcome,
                         std::size_t recipients) noexcept;
    // A throttle reply seen outside record_delivery() (the Graph method's 429). Never throws.
    void record_throttle(const std::string& account, ThrottleKind kind) noexcept;
    // A token request to Entra ID was made / failed. Never throw.
    void record_token_request(const std::string& account) noexcept;
    void record_token_failure(const std::string& account) noexcept;

    // The account's counters now. Throws Error (temporary) for a refused or
    // unreadable file; all zeros when there is none.
    CounterSnapshot read(const std::string& account) const;

    // <state_dir>/counters/<account>.cnt
    std::string path(const std::string& account) const;

  private:
    std::string state_dir_;
    std::string dir_;
    Clock clock_;
};

}  // namespace o365
