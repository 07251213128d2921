#include "policy.hpp"

#include <charconv>

#include "address.hpp"
#include "graph_limits.hpp"
#include "sender_rules.hpp"

namespace o365 {

std::string_view to_string(Action a) noexcept {
    switch (a) {
        case Action::continue_:
            return "continue";
        case Action::accept:
            return "accept";
        case Action::reject:
            return "reject";
        case Action::tempfail:
            return "tempfail";
    }
    return "?";
}

std::string Decision::reply() const {
    if (smtp_code.empty()) return {};
    return smtp_code + " " + enhanced_code + " " + text;
}

Policy::Policy(std::shared_ptr<const Config> config, std::shared_ptr<RateLimiter> limiter,
               HealthProbe health)
    : config_(std::move(config)),
      resolver_(config_),
      limiter_(limiter ? std::move(limiter) : std::make_shared<RateLimiter>()),
      health_(std::move(health)),
      managed_headers_(managed_header_names(*config_)) {}

std::vector<std::string> Policy::managed_header_names(const Config& c) {
    std::vector<std::string> names;
    auto add = [&names](const std::string& name) {
        for (const std::string& n : names)
            if (lower_ascii(n) == lower_ascii(name)) return;
        names.push_back(name);
    };
    add(c.milter.tag_header);
    for (const Account& a : c.accounts)
        for (const auto& [name, value] : a.headers)
            add(name);
    return names;
}

RateLimiter::Limits Policy::limits() const {
    return {config_->policy.messages_per_minute, config_->policy.recipients_per_day};
}

namespace {

std::string strip_angles(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
    return std::string(s);
}

// SIZE=n among the ESMTP parameters; -1 when absent or malformed.
long long declared_size(const std::vector<std::string>& args) {
    for (const std::string& a : args) {
        if (a.size() > 5 && lower_ascii(a.substr(0, 5)) == "size=") {
            long long v = -1;
            auto [p, ec] = std::from_chars(a.data() + 5, a.data() + a.size(), v);
            if (ec == std::errc() && p == a.data() + a.size() && v >= 0) return v;
            return -1;
        }
    }
    return -1;
}

// The domain of an envelope address, lower-cased; "" when there is none.
std::string domain_of(const std::string& addr) {
    auto a = parse_address(addr);
    return a ? a->domain : std::string();
}

// "example.com" matches only example.com; ".example.com" matches its subdomains.
bool domain_listed(const std::vector<std::string>& list, const std::string& domain) {
    if (domain.empty()) return false;
    for (const std::string& e : list) {
        if (e.empty()) continue;
        if (e[0] == '.') {
            if (domain.size() > e.size() &&
                domain.compare(domain.size() - e.size(), e.size(), e) == 0)
                return true;
        } else if (e == domain) {
            return true;
        }
    }
    return false;
}

}  // namespace

Transaction::Transaction(std::shared_ptr<const Policy> policy, ConnectionFacts conn)
    : policy_(std::move(policy)), conn_(std::move(conn)) {}

Decision Transaction::make(Action a, std::string smtp, std::string enh, std::string text,
                           std::string rule) const {
    Decision d;
    d.action = a;
    d.smtp_code = std::move(smtp);
    d.enhanced_code = std::move(enh);
    d.text = std::move(text);
    d.rule = std::move(rule);
    d.account = account_;
    return d;
}

Decision Transaction::rate_limited(RateLimiter::Verdict v) const {
    const PolicySettings& p = policy_->config().policy;
    bool per_minute = v == RateLimiter::Verdict::messages_per_minute;
    std::string limit = per_minute ? std::to_string(p.messages_per_minute) + " messages per minute"
                                   : std::to_string(p.recipients_per_day) + " recipients per day";
    return make(Action::tempfail, "451", "4.7.1",
                "account " + acc_->name + " reached " + limit + "; try again later",
                per_minute ? "messages_per_minute" : "recipients_per_day");
}

Decision Transaction::finish(Decision d) {
    done_ = true;
    final_ = d;
    return d;
}

Decision Transaction::on_mail(std::string_view sender_arg, const std::vector<std::string>& args) {
    if (done_) return final_;
    const Config& cfg = policy_->config();
    const PolicySettings& p = cfg.policy;
    mail_seen_ = true;
    sender_ = strip_angles(sender_arg);
    declared_size_ = declared_size(args);

    if (sender_.empty()) {
        null_sender_ = true;
        NullSenderAccount ns = null_sender_account(cfg);
        if (!ns) return finish(make(Action::reject, "550", "5.7.1", ns.refusal, "null_sender"));
        acc_ = ns.account;
        account_ = acc_->name;
    } else {
        acc_ = policy_->resolver().resolve(sender_);
        if (acc_) {
            account_ = acc_->name;
        } else if (p.unknown_sender == UnknownSender::reject) {
            return finish(make(Action::reject, "550", "5.7.1",
                               "sender " + sender_ + " is not allowed to send through this relay",
                               "unknown_sender"));
        } else if (p.unknown_sender == UnknownSender::tempfail) {
            return finish(make(
                Action::tempfail, "451", "4.7.1",
                "sender " + sender_ + " is not allowed to send through this relay; try again later",
                "unknown_sender"));
        }
    }

    if (declared_size_ >= 0)
        if (auto d = size_verdict(declared_size_, true)) return finish(*d);

    if (acc_ && policy_->health()) {
        if (auto why = policy_->health()(*acc_))
            return finish(
                make(Action::tempfail, "451", "4.7.0",
                     "account " + acc_->name + " cannot get a token from Entra ID: " + *why,
                     "account_health"));
    }

    if (acc_ && p.messages_per_minute > 0) {
        auto v = policy_->limiter().check(acc_->name, 0, policy_->limits());
        if (v == RateLimiter::Verdict::messages_per_minute) return finish(rate_limited(v));
    }
    return make(Action::continue_, "", "", "", "");
}

std::optional<Decision> Transaction::size_verdict(long long size, bool declared) const {
    const PolicySettings& p = policy_->config().policy;
    // The delivery method's own limit (Microsoft Graph: 3 MB), the one rule the
    // transport applies too (graph_limits.hpp). The transport measures the
    // message as Postfix hands it over, with its Received header and the
    // headers added here, so the milter counts an allowance for them.
    std::optional<long long> method = acc_ ? method_size_limit(*acc_) : std::nullopt;
    if (method && size + kAddedHeaderAllowance > *method)
        return make(Action::reject, "552", "5.3.4",
                    "message size " + (declared ? std::to_string(size) + " " : std::string()) +
                        "exceeds the limit of " + std::to_string(*method) +
                        " bytes of Microsoft Graph for account " + acc_->name,
                    "graph_size_limit");
    if (size > p.max_message_size)
        return make(Action::reject, "552", "5.3.4",
                    "message size " + (declared ? std::to_string(size) + " " : std::string()) +
                        "exceeds the limit of " + std::to_string(p.max_message_size) +
                        " bytes of this relay",
                    "max_message_size");
    return std::nullopt;
}

std::optional<Decision> Transaction::domain_verdict(const std::string& rcpt) const {
    const PolicySettings& p = policy_->config().policy;
    if (p.blocked_recipient_domains.empty() && p.allowed_recipient_domains.empty())
        return std::nullopt;
    std::string domain = domain_of(rcpt);
    if (domain_listed(p.blocked_recipient_domains, domain))
        return make(Action::reject, "550", "5.7.1",
                    "recipient domain " + domain + " is blocked on this relay",
                    "blocked_recipient_domains");
    if (!p.allowed_recipient_domains.empty() && !domain_listed(p.allowed_recipient_domains, domain))
        return make(Action::reject, "550", "5.7.1",
                    domain.empty() ? "recipient " + rcpt + " has no domain allowed on this relay"
                                   : "recipient domain " + domain + " is not allowed on this relay",
                    "allowed_recipient_domains");
    return std::nullopt;
}

Decision Transaction::on_rcpt(std::string_view recipient_arg, const std::vector<std::string>&) {
    if (done_) return final_;
    const PolicySettings& p = policy_->config().policy;
    std::string rcpt = strip_angles(recipient_arg);

    std::optional<Decision> v = domain_verdict(rcpt);
    if (!v && static_cast<long>(recipients_.size()) + 1 > p.max_recipients) {
        if (conn_.smtp) {
            v = make(Action::tempfail, "452", "4.5.3",
                     "too many recipients: at most " + std::to_string(p.max_recipients) +
                         " per message through this relay",
                     "max_recipients");
        } else {
            too_many_ = true;
        }
    }
    if (!v && !too_many_ && conn_.smtp && acc_ && p.recipients_per_day > 0) {
        auto r = policy_->limiter().check(acc_->name, static_cast<long>(recipients_.size()) + 1,
                                          policy_->limits());
        if (r == RateLimiter::Verdict::recipients_per_day) v = rate_limited(r);
    }
    if (v) {
        if (conn_.smtp) return *v;
        if (!pending_) pending_ = std::move(v);  // non-SMTP: answer at end of message
        return make(Action::continue_, "", "", "", "");
    }
    if (!too_many_) recipients_.push_back(rcpt);
    return make(Action::continue_, "", "", "", "");
}

Decision Transaction::on_header(std::string_view name, std::string_view value) {
    if (done_) return final_;
    size_ += name.size() + 2 + value.size() + 2;  // "Name: value\r\n"
    std::string lname = lower_ascii(name);
    ++header_counts_[lname];
    if (lname == "from")
        from_values_.emplace_back(value);
    else if (lname == "sender")
        sender_values_.emplace_back(value);
    return make(Action::continue_, "", "", "", "");
}

Decision Transaction::on_body(std::size_t bytes) {
    if (done_) return final_;
    size_ += bytes;
    // +2: the empty line between header and body.
    if (auto d = size_verdict(static_cast<long long>(size_ + 2), false)) return finish(*d);
    return make(Action::continue_, "", "", "", "");
}

std::optional<Decision> Transaction::alignment_verdict(const Account& acc) const {
    const Resolver& resolver = policy_->resolver();
    for (const auto& [field, values] :
         {std::pair{"From", &from_values_}, std::pair{"Sender", &sender_values_}})
        for (const std::string& v : *values)
            if (auto why = alignment_refusal(resolver, acc, field, v))
                return make(Action::reject, "550", "5.7.1", *why, "require_from_alignment");
    return std::nullopt;
}

void Transaction::add_tag_edits(const Account* acc, Decision& d) const {
    // 1. Delete every client copy of a header this relay adds (the tag header and
    //    any account's add_header), last first, so that indexes stay valid
    //    whether or not the MTA renumbers after a deletion.
    for (const std::string& name : policy_->managed_headers()) {
        auto it = header_counts_.find(lower_ascii(name));
        if (it == header_counts_.end()) continue;
        for (int i = it->second; i >= 1; --i)
            d.edits.push_back({HeaderEdit::Kind::remove, name, i, ""});
    }
    if (!acc) return;
    // 2. Add the tag header and the account's own static headers.
    d.edits.push_back({HeaderEdit::Kind::add, policy_->config().milter.tag_header, 0, acc->name});
    for (const auto& [name, value] : acc->headers)
        d.edits.push_back({HeaderEdit::Kind::add, name, 0, value});
}

void Transaction::add_null_sender_edits(const Account& acc, Decision& d) const {
    // The envelope sender becomes the account's mailbox, and each header From
    // it may not send as becomes that mailbox (the rule the transport applies
    // to Postfix's own bounces), because Exchange checks From for Send As.
    d.new_sender = "<" + acc.mailbox + ">";
    const Resolver& resolver = policy_->resolver();
    if (from_values_.empty()) {
        d.edits.push_back(
            {HeaderEdit::Kind::add, "From", 0, null_sender_from(resolver, acc, "").value_or("")});
        return;
    }
    for (std::size_t i = 0; i < from_values_.size(); ++i)
        if (auto v = null_sender_from(resolver, acc, from_values_[i]))
            d.edits.push_back({HeaderEdit::Kind::change, "From", static_cast<int>(i + 1), *v});
}

Decision Transaction::on_eom() {
    if (done_) return final_;
    if (pending_) return finish(*pending_);
    const PolicySettings& p = policy_->config().policy;
    if (too_many_)
        return finish(make(Action::reject, "550", "5.5.3",
                           "too many recipients: at most " + std::to_string(p.max_recipients) +
                               " per message through this relay",
                           "max_recipients"));
    if (auto d = size_verdict(static_cast<long long>(size_ + 2), false)) return finish(*d);

    Decision ok = make(Action::accept, "", "", "", "");
    if (acc_ && null_sender_) {
        add_null_sender_edits(*acc_, ok);
    } else if (acc_ && p.require_from_alignment) {
        if (auto d = alignment_verdict(*acc_)) return finish(*d);
    }

    if (acc_) {
        auto v = policy_->limiter().try_record(acc_->name, static_cast<long>(recipients_.size()),
                                               policy_->limits());
        if (v == RateLimiter::Verdict::messages_per_minute ||
            v == RateLimiter::Verdict::recipients_per_day)
            return finish(rate_limited(v));
    }
    Decision tags;
    add_tag_edits(acc_, tags);
    // Tag edits first (they touch other header names than From).
    tags.edits.insert(tags.edits.end(), ok.edits.begin(), ok.edits.end());
    ok.edits = std::move(tags.edits);
    return finish(std::move(ok));
}

std::string Transaction::log_line(const Decision& d) const {
    std::string s = (queue_id_.empty() ? std::string("NOQUEUE") : queue_id_) + ": from=<" +
                    sender_ + ">, account=" + (account_.empty() ? "-" : account_) +
                    ", client=" + (conn_.client_addr.empty() ? "-" : conn_.client_addr);
    if (!conn_.auth_authen.empty()) s += ", sasl_username=" + conn_.auth_authen;
    if (!conn_.smtp) s += ", submission=non-smtp";
    s += ", nrcpt=" + std::to_string(recipients_.size());
    if (!recipients_.empty()) {
        s += " (";
        std::size_t shown = std::min<std::size_t>(recipients_.size(), 10);
        for (std::size_t i = 0; i < shown; ++i) {
            if (i) s += ",";
            s += "<" + recipients_[i] + ">";
        }
        if (shown < recipients_.size()) s += ",...";
        s += ")";
    }
    s += ", size=" + std::to_string(size_ ? size_ + 2 : 0);
    s += ", verdict=" +
         std::string(to_string(d.action == Action::continue_ ? Action::accept : d.action));
    s += ", rule=" + (d.rule.empty() ? std::string("-") : d.rule);
    if (d.new_sender) s += ", rewritten_sender=" + *d.new_sender;
    if (!d.smtp_code.empty()) s += ", reply=\"" + d.reply() + "\"";
    return s;
}

std::string Transaction::log_rcpt_refused(std::string_view recipient, const Decision& d) const {
    return (queue_id_.empty() ? std::string("NOQUEUE") : queue_id_) + ": from=<" + sender_ +
           ">, account=" + (account_.empty() ? "-" : account_) + ", to=<" +
           strip_angles(recipient) + ">, verdict=" + std::string(to_string(d.action)) +
           ", rule=" + d.rule + ", reply=\"" + d.reply() + "\"";
}

}  // namespace o365
