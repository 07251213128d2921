// counters: see counters.hpp for the contract.
#include "counters.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>

#include "delivery_status.hpp"
#include "error.hpp"
#include "log.hpp"
#include "smtp_reply.hpp"
#include "unique_fd.hpp"

namespace o365 {

// --- names -----------------------------------------------------------------

std::string_view reason_name(ReasonClass c) noexcept {
    switch (c) {
        case ReasonClass::network:
            return "network";
        case ReasonClass::token:
            return "token";
        case ReasonClass::throttle:
            return "throttle";
        case ReasonClass::account:
            return "account";
        case ReasonClass::sender:
            return "sender";
        case ReasonClass::recipient:
            return "recipient";
        case ReasonClass::content:
            return "content";
        case ReasonClass::config:
            return "config";
        case ReasonClass::other:
            return "other";
    }
    return "other";
}

std::string_view throttle_name(ThrottleKind k) noexcept {
    switch (k) {
        case ThrottleKind::smtp_concurrency:
            return "smtp_4.3.2";
        case ThrottleKind::smtp_busy:
            return "smtp_4.7.500";
        case ThrottleKind::graph_429:
            return "graph_429";
    }
    return "graph_429";
}

std::string_view result_name(DeliveryResult r) noexcept {
    switch (r) {
        case DeliveryResult::sent:
            return "sent";
        case DeliveryResult::deferred:
            return "deferred";
        case DeliveryResult::bounced:
            return "bounced";
    }
    return "deferred";
}

// --- classification ----------------------------------------------------------

namespace {

// A status line made by decide() without a server reply: its enhanced code
// says the cause (delivery_status.cpp's decide()).
struct LocalRule {
    std::string_view dsn;
    ReasonClass reason;
};
constexpr LocalRule kLocalRules[] = {
    {"4.4.1", ReasonClass::network},    // connect
    {"4.4.2", ReasonClass::network},    // lost connection, timeout
    {"4.4.3", ReasonClass::network},    // DNS
    {"4.4.7", ReasonClass::network},    // the deadline
    {"4.7.5", ReasonClass::network},    // TLS
    {"4.5.0", ReasonClass::network},    // protocol
    {"4.7.4", ReasonClass::network},    // no STARTTLS / no AUTH XOAUTH2
    {"4.7.0", ReasonClass::token},      // no access token
    {"4.3.5", ReasonClass::config},     // usage, config file, account mismatch
    {"5.7.1", ReasonClass::sender},     // no account may send as the sender, null sender
    {"5.1.7", ReasonClass::sender},     // invalid sender address
    {"5.1.3", ReasonClass::recipient},  // invalid recipient address
    {"4.1.3", ReasonClass::recipient},  // invalid recipient among valid ones
    {"5.6.7", ReasonClass::content},    // SMTPUTF8 needed
    {"4.3.0", ReasonClass::other},      // internal, message input
};

// A server reply quoted in the status line ("... said: 550 5.1.1 text (in
// reply to RCPT TO command)"). First matching rule wins; an empty field
// matches anything.
struct ReplyRule {
    std::string_view enhanced;  // exact enhanced code of the reply
    int code;                   // exact reply code (0: any)
    std::string_view text;      // a substring of the reply
    std::string_view command;   // the command it answered
    ReasonClass reason;
};
constexpr ReplyRule kReplyRules[] = {
    {"5.7.139", 0, "", "", ReasonClass::account},  // SMTP AUTH disabled
    {"5.2.252", 0, "SendAsDenied", "", ReasonClass::sender},
    {"5.7.60", 0, "", "", ReasonClass::sender},
    {"5.1.8", 0, "", "", ReasonClass::account},
    {"5.2.0", 0, "SubmissionQuotaExceeded", "", ReasonClass::account},
    {"5.2.2", 0, "QuotaExceededException", "", ReasonClass::account},
    {"5.2.251", 0, "", "", ReasonClass::account},
    {"5.2.252", 0, "", "", ReasonClass::account},
    {"5.2.253", 0, "", "", ReasonClass::account},
    {"5.2.254", 0, "", "", ReasonClass::account},
    {"5.2.255", 0, "", "", ReasonClass::account},
    {"5.7.57", 0, "", "", ReasonClass::account},
    {"5.7.705", 0, "", "", ReasonClass::account},
    {"5.7.708", 0, "", "", ReasonClass::account},
    {"", 0, "", "AUTH", ReasonClass::token},  // 535 after the forced refresh
    {"", 552, "", "", ReasonClass::content},  // too big
    {"5.3.4", 0, "", "", ReasonClass::content},
    {"5.2.3", 0, "", "", ReasonClass::content},
    {"", 0, "", "RCPT TO", ReasonClass::recipient},
    {"", 0, "", "MAIL FROM", ReasonClass::sender},
    {"", 0, "", "DATA", ReasonClass::content},
    {"", 0, "", "end of DATA", ReasonClass::content},
    {"", 0, "", "", ReasonClass::network},  // greeting, EHLO, STARTTLS, QUIT
};

struct QuotedReply {
    SmtpReply reply;
    std::string command;  // "" when the line does not say
};

// The server reply quoted by reply_reason() in delivery_status.cpp.
std::optional<QuotedReply> quoted_reply(const std::string& line) {
    std::size_t p = line.find(" said: ");
    std::size_t skip = 7;
    if (p == std::string::npos) {
        p = line.find(" refused to talk to me: ");
        skip = 24;
    }
    if (p == std::string::npos) return std::nullopt;
    std::string_view rest = std::string_view(line).substr(p + skip);
    if (rest.size() < 3 ||
        !std::all_of(rest.begin(), rest.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    QuotedReply q;
    q.reply.code = std::stoi(std::string(rest.substr(0, 3)));
    rest.remove_prefix(std::min<std::size_t>(4, rest.size()));
    q.reply.enhanced = parse_enhanced_code(rest);
    q.reply.lines.emplace_back(rest);
    std::size_t c = line.rfind("(in reply to ");
    if (c != std::string::npos) {
        std::size_t e = line.find(" command", c);
        if (e != std::string::npos) q.command = line.substr(c + 13, e - (c + 13));
    }
    return q;
}

bool matches(const ReplyRule& r, const QuotedReply& q) {
    if (!r.enhanced.empty() && q.reply.enhanced != r.enhanced) return false;
    if (r.code != 0 && q.reply.code != r.code) return false;
    if (!r.text.empty() && q.reply.lines[0].find(r.text) == std::string::npos) return false;
    if (!r.command.empty() && q.command != r.command) return false;
    return true;
}

ReasonClass reply_reason(const QuotedReply& q) {
    for (const auto& r : kReplyRules)
        if (matches(r, q)) return r.reason;
    return ReasonClass::network;
}

ReasonClass local_reason(const Outcome& o) {
    const std::string dsn = o.dsn();
    for (const auto& r : kLocalRules)
        if (r.dsn == dsn) return r.reason;
    return ReasonClass::other;
}

// A Graph answer quoted by delivery_status.cpp: "... said: HTTP 403 ErrorAccessDenied: ...".
struct GraphRule {
    int status;        // HTTP status; 500 stands for every 5xx
    const char* code;  // Graph error code; "" for any
    ReasonClass reason;
    bool throttle;  // a Graph 429 (counted as ThrottleKind::graph_429)
};

const GraphRule kGraphRules[] = {
    {429, "", ReasonClass::throttle, true},
    {401, "", ReasonClass::token, false},
    {403, "ErrorSendAsDenied", ReasonClass::sender, false},
    {403, "", ReasonClass::account, false},
    {404, "", ReasonClass::account, false},
    {413, "", ReasonClass::content, false},
    {400, "ErrorInvalidRecipients", ReasonClass::recipient, false},
    {400, "", ReasonClass::content, false},
    {500, "", ReasonClass::network, false},
};

std::optional<DeliveryClass> graph_class(const std::string& line) {
    std::size_t p = line.find(" said: HTTP ");
    if (p == std::string::npos) return std::nullopt;
    std::string_view rest = std::string_view(line).substr(p + 12);
    if (rest.size() < 3 ||
        !std::all_of(rest.begin(), rest.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    int status = std::stoi(std::string(rest.substr(0, 3)));
    std::string_view code = rest.substr(std::min<std::size_t>(4, rest.size()));
    code = code.substr(0, code.find_first_of(": "));
    DeliveryClass c;
    for (const GraphRule& r : kGraphRules) {
        bool status_ok = r.status == 500 ? status >= 500 : r.status == status;
        if (status_ok && (!*r.code || code == r.code)) {
            c.reason = r.reason;
            if (r.throttle) c.throttle = ThrottleKind::graph_429;
            return c;
        }
    }
    c.reason = ReasonClass::other;
    return c;
}

}  // namespace

std::optional<ThrottleKind> classify_throttle(const SmtpReply& reply) {
    if (reply.code == 432 || reply.enhanced == "4.3.2") return ThrottleKind::smtp_concurrency;
    if (reply.enhanced == "4.7.500") return ThrottleKind::smtp_busy;
    return std::nullopt;
}

DeliveryClass classify_delivery(const Outcome& o) {
    DeliveryClass c;
    if (o.exit_status == kExOk) {
        c.result = DeliveryResult::sent;
        return c;
    }
    c.result = o.temporary() ? DeliveryResult::deferred : DeliveryResult::bounced;
    if (auto g = graph_class(o.status_line)) {
        g->result = c.result;
        return *g;
    }
    if (auto q = quoted_reply(o.status_line)) {
        c.throttle = classify_throttle(q->reply);
        c.reason = c.throttle ? ReasonClass::throttle : reply_reason(*q);
    } else {
        c.reason = local_reason(o);
    }
    return c;
}

// --- snapshot helpers ---------------------------------------------------------

std::uint64_t CounterSnapshot::deferred_sum() const {
    std::uint64_t n = 0;
    for (auto v : deferred_total)
        n += v;
    return n;
}

std::uint64_t CounterSnapshot::bounced_sum() const {
    std::uint64_t n = 0;
    for (auto v : bounced_total)
        n += v;
    return n;
}

std::uint64_t CounterSnapshot::throttles_sum() const {
    std::uint64_t n = 0;
    for (auto v : throttles_total)
        n += v;
    return n;
}

// --- the file ----------------------------------------------------------------

namespace {

constexpr char kMagic[8] = {'O', '3', '6', '5', 'C', 'N', 'T', '1'};
constexpr std::uint32_t kVersion = 1;
constexpr std::int64_t kMinutes = 24 * 60;
constexpr std::int64_t kSeconds = 60;
constexpr auto kLockWait = std::chrono::seconds(1);

struct MinuteBucket {
    std::int64_t minute;  // unix time / 60 this bucket holds
    std::uint32_t recipients;
    std::uint32_t sent;
    std::uint32_t deferred;
    std::uint32_t bounced;
};

struct SecondBucket {
    std::int64_t second;  // unix time this bucket holds
    std::uint64_t messages;
};

// The fixed layout of <account>.cnt (host byte order; the file never leaves the host).
struct Record {
    char magic[8];
    std::uint32_t version;
    std::uint32_t size;
    std::uint64_t sent;
    std::uint64_t deferred[kReasonClasses];
    std::uint64_t bounced[kReasonClasses];
    std::uint64_t throttles[kThrottleKinds];
    std::uint64_t token_requests;
    std::uint64_t token_failures;
    std::uint64_t recipients;
    std::int64_t last_failure_at;
    std::uint32_t last_failure_result;
    std::uint32_t last_failure_reason;
    char last_failure[504];
    MinuteBucket minutes[kMinutes];
    SecondBucket seconds[kSeconds];
};
static_assert(std::is_trivially_copyable_v<Record>);
static_assert(offsetof(Record, minutes) % 8 == 0);

void init(Record& r) {
    std::memset(&r, 0, sizeof r);
    std::memcpy(r.magic, kMagic, sizeof kMagic);
    r.version = kVersion;
    r.size = sizeof(Record);
}

[[noreturn]] void fail(const std::string& what) {
    throw Error(ErrorClass::temporary, "counters: " + what);
}

[[noreturn]] void fail_errno(const std::string& what, const std::string& path) {
    fail(path + ": " + what + ": " + std::strerror(errno));
}

// The trust rules of the token cache: ours, not a symlink, not open to others.
void check_dir(const std::string& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) fail_errno("stat", dir);
    if (S_ISLNK(st.st_mode))
        fail("refusing directory " + dir + ": it is a symbolic link; remove it");
    if (!S_ISDIR(st.st_mode)) fail("refusing " + dir + ": not a directory");
    if (st.st_uid != ::geteuid())
        fail("refusing directory " + dir + ": owned by uid " + std::to_string(st.st_uid) +
             ", not by the service user (uid " + std::to_string(::geteuid()) + ")");
    if (st.st_mode & 077)
        fail("refusing directory " + dir + ": group or other may access it; run: chmod 700 " + dir);
}

void ensure_dir(const std::string& state_dir, const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        if (errno != ENOENT) fail_errno("create directory", dir);
        if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST)
            fail_errno("create state directory", state_dir);
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) fail_errno("create directory", dir);
    }
    check_dir(dir);
}

void check_file(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail_errno("stat", path);
    if (!S_ISREG(st.st_mode)) fail("refusing " + path + ": not a regular file");
    if (st.st_uid != ::geteuid())
        fail("refusing " + path + ": owned by uid " + std::to_string(st.st_uid) +
             ", not by the service user (uid " + std::to_string(::geteuid()) + ")");
    if (st.st_mode & 077) {
        log_warning("counters: " + path + " was open to group or other: mode set back to 0600");
        if (::fchmod(fd, 0600) != 0) fail_errno("chmod 0600", path);
    }
}

// Opens with O_NOFOLLOW (a symlink is refused) and applies the trust rules.
// An empty fd: the file does not exist (only without O_CREAT).
UniqueFd open_checked(const std::string& path, int flags) {
    UniqueFd fd(::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
        if (errno == ENOENT && !(flags & O_CREAT)) return fd;
        if (errno == ELOOP) fail("refusing " + path + ": it is a symbolic link; remove it");
        fail_errno("open", path);
    }
    check_file(fd.get(), path);
    return fd;
}

// flock(2) without blocking a delivery for long: gives up after kLockWait.
void lock(int fd, int how, const std::string& path) {
    const auto until = std::chrono::steady_clock::now() + kLockWait;
    while (::flock(fd, how | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) fail_errno("lock", path);
        if (std::chrono::steady_clock::now() >= until)
            fail(path + ": still locked by another process after 1 s");
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

// The record of `fd`; a new (empty) file or one of another layout reads as zeros.
void load(int fd, const std::string& path, Record& r, bool quiet) {
    ssize_t n = ::pread(fd, &r, sizeof r, 0);
    if (n < 0) fail_errno("read", path);
    if (n == 0) {
        init(r);
        return;
    }
    if (static_cast<std::size_t>(n) != sizeof r ||
        std::memcmp(r.magic, kMagic, sizeof kMagic) != 0 || r.version != kVersion ||
        r.size != sizeof r) {
        if (!quiet) log_warning("counters: " + path + " has another layout or is truncated: reset");
        init(r);
    }
}

void store(int fd, const std::string& path, const Record& r) {
    const char* p = reinterpret_cast<const char*>(&r);
    std::size_t off = 0;
    while (off < sizeof r) {
        ssize_t n = ::pwrite(fd, p + off, sizeof r - off, static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail_errno("write", path);
        off += static_cast<std::size_t>(n);
    }
}

MinuteBucket& minute_bucket(Record& r, std::int64_t now) {
    const std::int64_t m = now / 60;
    MinuteBucket& b = r.minutes[((m % kMinutes) + kMinutes) % kMinutes];
    if (b.minute != m) b = MinuteBucket{m, 0, 0, 0, 0};
    return b;
}

SecondBucket& second_bucket(Record& r, std::int64_t now) {
    SecondBucket& b = r.seconds[((now % kSeconds) + kSeconds) % kSeconds];
    if (b.second != now) b = SecondBucket{now, 0};
    return b;
}

void check_account_name(const std::string& name) {
    if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
        fail("invalid account name '" + name + "'");
}

std::int64_t system_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Read, change, write back under the exclusive lock. Never throws: a failure
// loses this count and is logged.
template <class Change>
void update(const std::string& state_dir, const std::string& dir, const std::string& path,
            const std::string& account, std::int64_t now, Change change) noexcept {
    try {
        check_account_name(account);
        ensure_dir(state_dir, dir);
        UniqueFd fd = open_checked(path, O_RDWR | O_CREAT);
        lock(fd.get(), LOCK_EX, path);
        auto r = std::make_unique<Record>();
        load(fd.get(), path, *r, false);
        change(*r, now);
        store(fd.get(), path, *r);
        // The lock goes with the descriptor.
    } catch (const std::exception& e) {
        try {
            log_warning(std::string(e.what()) + " (account " + account + ": count lost)");
        } catch (...) {
        }
    }
}

}  // namespace

Counters::Counters(std::string state_dir, Clock clock)
    : state_dir_(std::move(state_dir)), dir_(state_dir_ + "/counters"), clock_(std::move(clock)) {}

std::string Counters::path(const std::string& account) const {
    return dir_ + "/" + account + ".cnt";
}

void Counters::record_delivery(const std::string& account, const Outcome& outcome,
                               std::size_t recipients) noexcept {
    DeliveryClass c;
    std::string line;
    try {
        c = classify_delivery(outcome);
        if (c.result != DeliveryResult::sent) line = redact(outcome.status_line);
    } catch (...) {
        return;
    }
    const auto rcpts = static_cast<std::uint32_t>(std::min<std::size_t>(recipients, 1u << 30));
    update(state_dir_, dir_, path(account), account, clock_ ? clock_() : system_now(),
           [&](Record& r, std::int64_t now) {
               MinuteBucket& m = minute_bucket(r, now);
               const auto reason = static_cast<std::size_t>(c.reason);
               if (c.throttle) ++r.throttles[static_cast<std::size_t>(*c.throttle)];
               switch (c.result) {
                   case DeliveryResult::sent:
                       ++r.sent;
                       r.recipients += rcpts;
                       ++m.sent;
                       m.recipients += rcpts;
                       ++second_bucket(r, now).messages;
                       return;
                   case DeliveryResult::deferred:
                       ++r.deferred[reason];
                       ++m.deferred;
                       break;
                   case DeliveryResult::bounced:
                       ++r.bounced[reason];
                       ++m.bounced;
                       break;
               }
               r.last_failure_at = now;
               r.last_failure_result = static_cast<std::uint32_t>(c.result);
               r.last_failure_reason = static_cast<std::uint32_t>(c.reason);
               std::memset(r.last_failure, 0, sizeof r.last_failure);
               std::memcpy(r.last_failure, line.data(),
                           std::min(line.size(), sizeof r.last_failure - 1));
           });
}

void Counters::record_throttle(const std::string& account, ThrottleKind kind) noexcept {
    update(state_dir_, dir_, path(account), account, clock_ ? clock_() : system_now(),
           [kind](Record& r, std::int64_t) { ++r.throttles[static_cast<std::size_t>(kind)]; });
}

void Counters::record_token_request(const std::string& account) noexcept {
    update(state_dir_, dir_, path(account), account, clock_ ? clock_() : system_now(),
           [](Record& r, std::int64_t) { ++r.token_requests; });
}

void Counters::record_token_failure(const std::string& account) noexcept {
    update(state_dir_, dir_, path(account), account, clock_ ? clock_() : system_now(),
           [](Record& r, std::int64_t) { ++r.token_failures; });
}

CounterSnapshot Counters::read(const std::string& account) const {
    check_account_name(account);
    CounterSnapshot s;
    const std::string p = path(account);
    struct stat st {};
    if (::lstat(dir_.c_str(), &st) != 0 && errno == ENOENT) return s;
    check_dir(dir_);
    UniqueFd fd = open_checked(p, O_RDONLY);
    if (!fd) return s;
    lock(fd.get(), LOCK_SH, p);
    auto r = std::make_unique<Record>();
    load(fd.get(), p, *r, true);
    fd.reset();

    const std::int64_t now = clock_ ? clock_() : system_now();
    s.sent_total = r->sent;
    std::copy(std::begin(r->deferred), std::end(r->deferred), s.deferred_total.begin());
    std::copy(std::begin(r->bounced), std::end(r->bounced), s.bounced_total.begin());
    std::copy(std::begin(r->throttles), std::end(r->throttles), s.throttles_total.begin());
    s.token_requests_total = r->token_requests;
    s.token_failures_total = r->token_failures;
    s.recipients_total = r->recipients;
    const std::int64_t minute = now / 60;
    for (const auto& b : r->minutes) {
        if (b.minute > minute - kMinutes && b.minute <= minute) {
            s.sent_24h += b.sent;
            s.deferred_24h += b.deferred;
            s.bounced_24h += b.bounced;
            s.recipients_24h += b.recipients;
        }
    }
    for (const auto& b : r->seconds)
        if (b.second > now - kSeconds && b.second <= now) s.messages_last_minute += b.messages;
    s.last_failure_at = r->last_failure_at;
    if (r->last_failure_at != 0) {
        s.last_failure_result =
            r->last_failure_result == 2 ? DeliveryResult::bounced : DeliveryResult::deferred;
        s.last_failure_reason = static_cast<ReasonClass>(
            std::min<std::uint32_t>(r->last_failure_reason, kReasonClasses - 1));
        s.last_failure.assign(r->last_failure, ::strnlen(r->last_failure, sizeof r->last_failure));
    }
    return s;
}

}  // namespace o365
