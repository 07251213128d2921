#include "glue.hpp"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <exception>
#include <memory>
#include <optional>
#include <vector>

#include "log.hpp"

namespace o365 {

namespace {

Runtime* g_runtime = nullptr;

struct ConnCtx {
    ConnectionFacts facts;
    bool nr_conn = false;        // connect needs no reply (negotiated)
    bool nr_hdr = false;         // headers need no reply (negotiated)
    bool nr_body = false;        // body chunks need no reply (negotiated)
    std::string deferred_error;  // an error at a no-reply stage, answered at EOM
    std::unique_ptr<Transaction> msg;
};

ConnCtx* conn_of(SMFICTX* ctx) {
    return static_cast<ConnCtx*>(smfi_getpriv(ctx));
}

ConnCtx& ensure_conn(SMFICTX* ctx) {
    ConnCtx* c = conn_of(ctx);
    if (!c) {
        auto owned = std::make_unique<ConnCtx>();
        if (smfi_setpriv(ctx, owned.get()) != MI_SUCCESS)
            throw std::runtime_error("smfi_setpriv failed");
        c = owned.release();
    }
    return *c;
}

std::string macro(SMFICTX* ctx, const char* name) {
    const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
    return v ? std::string(v) : std::string();
}

void refresh_queue_id(SMFICTX* ctx, Transaction& t) {
    std::string id = macro(ctx, "i");
    if (!id.empty()) t.set_queue_id(id);
}

void set_reply(SMFICTX* ctx, const std::string& code, const std::string& enh,
               const std::string& text) {
    std::string c = code, e = enh, m = milter_reply_text(text);
    if (smfi_setreply(ctx, c.data(), e.empty() ? nullptr : e.data(), m.data()) != MI_SUCCESS)
        log_warning("smfi_setreply refused the reply " + code + " " + enh + " " + m);
}

sfsistat answer(SMFICTX* ctx, const Decision& d) {
    switch (d.action) {
        case Action::reject:
            set_reply(ctx, d.smtp_code, d.enhanced_code, d.text);
            return SMFIS_REJECT;
        case Action::tempfail:
            set_reply(ctx, d.smtp_code, d.enhanced_code, d.text);
            return SMFIS_TEMPFAIL;
        case Action::accept:
        case Action::continue_:
            return SMFIS_CONTINUE;
    }
    return SMFIS_CONTINUE;
}

// The answer for an internal error, per [milter] on_error.
sfsistat on_error(SMFICTX* ctx, const char* stage, const std::string& what) {
    OnError mode = OnError::tempfail;
    try {
        if (g_runtime)
            if (auto p = g_runtime->policy()) mode = p->config().milter.on_error;
    } catch (...) {
    }
    std::string qid;
    try {
        if (ConnCtx* c = conn_of(ctx); c && c->msg) qid = c->msg->queue_id();
    } catch (...) {
    }
    log_error((qid.empty() ? std::string("NOQUEUE") : qid) + ": internal error at " + stage + ": " +
              what + "; answering per on_error");
    switch (mode) {
        case OnError::accept:
            return SMFIS_ACCEPT;
        case OnError::reject:
            set_reply(ctx, "550", "5.3.0", "internal error in o365relay-milter");
            return SMFIS_REJECT;
        case OnError::tempfail:
            set_reply(ctx, "451", "4.3.0", "internal error in o365relay-milter; try again later");
            return SMFIS_TEMPFAIL;
    }
    return SMFIS_TEMPFAIL;
}

template <class F>
sfsistat guarded(SMFICTX* ctx, const char* stage, F&& f) noexcept {
    try {
        return f();
    } catch (const std::exception& e) {
        try {
            return on_error(ctx, stage, e.what());
        } catch (...) {
            return SMFIS_TEMPFAIL;
        }
    } catch (...) {
        try {
            return on_error(ctx, stage, "unknown exception");
        } catch (...) {
            return SMFIS_TEMPFAIL;
        }
    }
}

// Logs the message's verdict and forgets the message.
void finish_message(ConnCtx& c, const Decision& d) {
    if (!c.msg) return;
    log_info(c.msg->log_line(d));
    c.msg.reset();
}

sfsistat cb_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long,
                      unsigned long, unsigned long* pf0, unsigned long* pf1, unsigned long* pf2,
                      unsigned long* pf3) {
    return guarded(ctx, "negotiate", [&]() -> sfsistat {
        ConnCtx& c = ensure_conn(ctx);
        const unsigned long want_actions =
            SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM | SMFIF_SETSYMLIST;
        if ((f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM)) !=
            (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM))
            log_warning("the MTA does not offer every header/sender edit this milter needs");
        *pf0 = want_actions & f0;
        unsigned long steps = SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NOUNKNOWN | SMFIP_NOEOH;
        // No reply for headers and body chunks: fewer round trips per message;
        // the counted size is then judged at end of message.
        steps |= SMFIP_NR_CONN | SMFIP_NR_HDR | SMFIP_NR_BODY;
        *pf1 = steps & f1;
        c.nr_conn = (*pf1 & SMFIP_NR_CONN) != 0;
        c.nr_hdr = (*pf1 & SMFIP_NR_HDR) != 0;
        c.nr_body = (*pf1 & SMFIP_NR_BODY) != 0;
        *pf2 = 0;
        *pf3 = 0;
        if (f0 & SMFIF_SETSYMLIST) {
            smfi_setsymlist(ctx, SMFIM_CONNECT,
                            const_cast<char*>("{client_addr} {daemon_addr} {daemon_port}"));
            smfi_setsymlist(ctx, SMFIM_ENVFROM, const_cast<char*>("i {auth_authen}"));
            // RCPT needs no macro; naming one that no MTA defines keeps Postfix
            // from sending its default list (one packet less per recipient).
            smfi_setsymlist(ctx, SMFIM_ENVRCPT, const_cast<char*>("{o365relay_none}"));
            smfi_setsymlist(ctx, SMFIM_EOM, const_cast<char*>("i"));
        }
        return SMFIS_CONTINUE;
    });
}

std::string address_of(_SOCK_ADDR* sa) {
    if (!sa) return {};
    char buf[INET6_ADDRSTRLEN] = {0};
    if (sa->sa_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(sa);
        if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf)) return buf;
    } else if (sa->sa_family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(sa);
        if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf)) return buf;
    }
    return {};
}

int port_of(_SOCK_ADDR* sa) {
    if (!sa) return -1;
    if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(sa)->sin6_port);
    return -1;
}

sfsistat cb_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* hostaddr) {
    ConnCtx* c = nullptr;
    try {
        c = &ensure_conn(ctx);
        c->facts.client_addr = macro(ctx, "{client_addr}");
        if (c->facts.client_addr.empty()) c->facts.client_addr = address_of(hostaddr);
        if (c->facts.client_addr.empty() && hostname) c->facts.client_addr = hostname;
        // Postfix's cleanup(8) emulates the SMTP events of sendmail(1)
        // submissions (non_smtpd_milters) as a client 127.0.0.1 port 0 and a
        // daemon port 0 (Postfix 3.7 sends {daemon_addr} 127.0.0.1 there too);
        // Postfix before 3.2 sends no {daemon_addr} at all. smtpd(8) clients
        // always have a real port.
        const char* daemon = smfi_getsymval(ctx, const_cast<char*>("{daemon_addr}"));
        const char* dport = smfi_getsymval(ctx, const_cast<char*>("{daemon_port}"));
        int port = port_of(hostaddr);
        c->facts.smtp = daemon != nullptr && port != 0 && !(dport && std::string(dport) == "0");
        log_debug("connect from " + c->facts.client_addr + " port " + std::to_string(port) +
                  ", {daemon_addr}=" + (daemon ? daemon : "(none)") +
                  ", {daemon_port}=" + (dport ? dport : "(none)") +
                  (c->facts.smtp ? ": SMTP" : ": non-SMTP submission"));
        return c->nr_conn ? SMFIS_NOREPLY : SMFIS_CONTINUE;
    } catch (const std::exception& e) {
        // No reply is allowed here when NR_CONN was negotiated: answer at MAIL.
        if (c && c->nr_conn) {
            if (c->deferred_error.empty()) c->deferred_error = std::string("connect: ") + e.what();
            return SMFIS_NOREPLY;
        }
        return on_error(ctx, "connect", e.what());
    }
}

std::vector<std::string> args_after_first(char** argv) {
    std::vector<std::string> out;
    if (!argv || !argv[0]) return out;
    for (char** p = argv + 1; *p; ++p)
        out.emplace_back(*p);
    return out;
}

sfsistat cb_envfrom(SMFICTX* ctx, char** argv) {
    return guarded(ctx, "MAIL", [&]() -> sfsistat {
        ConnCtx& c = ensure_conn(ctx);
        std::shared_ptr<const Policy> policy = g_runtime ? g_runtime->policy() : nullptr;
        if (!policy) throw std::runtime_error("no policy loaded");
        if (!c.deferred_error.empty() && c.deferred_error.rfind("connect: ", 0) == 0)
            throw std::runtime_error(c.deferred_error);
        c.facts.auth_authen = macro(ctx, "{auth_authen}");
        c.deferred_error.clear();
        c.msg = std::make_unique<Transaction>(policy, c.facts);
        refresh_queue_id(ctx, *c.msg);
        Decision d = c.msg->on_mail(argv && argv[0] ? argv[0] : "", args_after_first(argv));
        if (d.is_final()) {
            sfsistat s = answer(ctx, d);
            finish_message(c, d);
            return s;
        }
        return SMFIS_CONTINUE;
    });
}

sfsistat cb_envrcpt(SMFICTX* ctx, char** argv) {
    return guarded(ctx, "RCPT", [&]() -> sfsistat {
        ConnCtx& c = ensure_conn(ctx);
        if (!c.msg) throw std::runtime_error("RCPT without MAIL");
        refresh_queue_id(ctx, *c.msg);
        std::string rcpt = argv && argv[0] ? argv[0] : "";
        Decision d = c.msg->on_rcpt(rcpt, args_after_first(argv));
        if (d.is_final()) {
            if (c.msg->done()) {
                sfsistat s = answer(ctx, d);
                finish_message(c, d);
                return s;
            }
            log_info(c.msg->log_rcpt_refused(rcpt, d));
            return answer(ctx, d);
        }
        return SMFIS_CONTINUE;
    });
}

sfsistat cb_header(SMFICTX* ctx, char* name, char* value) {
    ConnCtx* c = nullptr;
    try {
        c = &ensure_conn(ctx);
        if (c->msg) c->msg->on_header(name ? name : "", value ? value : "");
        return c->nr_hdr ? SMFIS_NOREPLY : SMFIS_CONTINUE;
    } catch (const std::exception& e) {
        // No reply is allowed here when NR_HDR was negotiated: answer at EOM.
        if (c && c->nr_hdr) {
            if (c->deferred_error.empty()) c->deferred_error = std::string("header: ") + e.what();
            return SMFIS_NOREPLY;
        }
        return on_error(ctx, "header", e.what());
    }
}

sfsistat cb_body(SMFICTX* ctx, unsigned char*, size_t len) {
    ConnCtx* c = nullptr;
    try {
        c = &ensure_conn(ctx);
        if (!c->msg) return c->nr_body ? SMFIS_NOREPLY : SMFIS_CONTINUE;
        Decision d = c->msg->on_body(len);
        // With NR_BODY the verdict (kept by the transaction) is given at EOM.
        if (c->nr_body) return SMFIS_NOREPLY;
        if (d.is_final()) {
            refresh_queue_id(ctx, *c->msg);
            sfsistat s = answer(ctx, d);
            finish_message(*c, d);
            return s;
        }
        return SMFIS_CONTINUE;
    } catch (const std::exception& e) {
        if (c && c->nr_body) {
            if (c->deferred_error.empty()) c->deferred_error = std::string("body: ") + e.what();
            return SMFIS_NOREPLY;
        }
        return on_error(ctx, "body", e.what());
    }
}

void apply_edits(SMFICTX* ctx, const std::string& qid, const Decision& d) {
    for (const HeaderEdit& e : d.edits) {
        std::string name = e.name, value = e.value;
        int r = MI_FAILURE;
        switch (e.kind) {
            case HeaderEdit::Kind::remove:
                r = smfi_chgheader(ctx, name.data(), e.index, nullptr);
                break;
            case HeaderEdit::Kind::change:
                r = smfi_chgheader(ctx, name.data(), e.index, value.data());
                break;
            case HeaderEdit::Kind::add:
                r = smfi_addheader(ctx, name.data(), value.data());
                break;
        }
        if (r != MI_SUCCESS) throw std::runtime_error("header edit of " + e.name + " failed");
        if (log_enabled(LogLevel::debug)) {
            const char* what = e.kind == HeaderEdit::Kind::add      ? "add "
                               : e.kind == HeaderEdit::Kind::remove ? "delete "
                                                                    : "change ";
            std::string where =
                e.kind == HeaderEdit::Kind::add
                    ? std::string(": ") + e.value
                    : "[" + std::to_string(e.index) + "]" +
                          (e.kind == HeaderEdit::Kind::change ? ": " + e.value : std::string());
            log_debug(qid + ": edit " + what + e.name + where);
        }
    }
    if (d.new_sender) {
        std::string s = *d.new_sender;
        if (smfi_chgfrom(ctx, s.data(), nullptr) != MI_SUCCESS)
            throw std::runtime_error("smfi_chgfrom " + s + " failed");
        log_debug(qid + ": edit envelope sender " + s);
    }
}

sfsistat cb_eom(SMFICTX* ctx) {
    return guarded(ctx, "end of message", [&]() -> sfsistat {
        ConnCtx& c = ensure_conn(ctx);
        if (!c.deferred_error.empty()) {
            std::string e = std::move(c.deferred_error);
            c.deferred_error.clear();
            throw std::runtime_error(e);
        }
        if (!c.msg) throw std::runtime_error("end of message without MAIL");
        refresh_queue_id(ctx, *c.msg);
        Decision d = c.msg->on_eom();
        if (d.is_final()) {
            sfsistat s = answer(ctx, d);
            finish_message(c, d);
            return s;
        }
        apply_edits(ctx, c.msg->queue_id().empty() ? "NOQUEUE" : c.msg->queue_id(), d);
        finish_message(c, d);
        return SMFIS_CONTINUE;
    });
}

sfsistat cb_abort(SMFICTX* ctx) {
    return guarded(ctx, "abort", [&]() -> sfsistat {
        if (ConnCtx* c = conn_of(ctx); c && c->msg) {
            log_debug((c->msg->queue_id().empty() ? std::string("NOQUEUE") : c->msg->queue_id()) +
                      ": message aborted by the MTA");
            c->msg.reset();
        }
        if (ConnCtx* c = conn_of(ctx)) c->deferred_error.clear();
        return SMFIS_CONTINUE;
    });
}

sfsistat cb_close(SMFICTX* ctx) {
    try {
        ConnCtx* c = conn_of(ctx);
        smfi_setpriv(ctx, nullptr);
        delete c;
    } catch (...) {
    }
    return SMFIS_CONTINUE;
}

}  // namespace

bool register_filter(Runtime& runtime, const char* name) {
    g_runtime = &runtime;
    static smfiDesc desc{};
    desc.xxfi_name = const_cast<char*>(name);
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM | SMFIF_SETSYMLIST;
    desc.xxfi_connect = cb_connect;
    desc.xxfi_helo = nullptr;
    desc.xxfi_envfrom = cb_envfrom;
    desc.xxfi_envrcpt = cb_envrcpt;
    desc.xxfi_header = cb_header;
    desc.xxfi_eoh = nullptr;
    desc.xxfi_body = cb_body;
    desc.xxfi_eom = cb_eom;
    desc.xxfi_abort = cb_abort;
    desc.xxfi_close = cb_close;
    desc.xxfi_unknown = nullptr;
    desc.xxfi_data = nullptr;
    desc.xxfi_negotiate = cb_negotiate;
    if (smfi_register(desc) != MI_SUCCESS) {
        log_error("smfi_register failed");
        return false;
    }
    return true;
}

}  // namespace o365
