#!/usr/bin/env python3
"""fake_o365.py: a fake smtp.office365.com for tests (python3 stdlib only).

Contract (details and file formats in tests/fakes/README.md, "fake Office 365"):
  fake_o365.py serve --state DIR --certs DIR [--host 127.0.0.1] [--port 0]
                     [--hostname NAME] [--seed N] [--idle-timeout S]
    Listens on loopback (port 0 = a free port), prints "READY <port>" on stdout
    once listening, and serves each connection in its own thread until killed.
    It plays Exchange Online client submission on port 587: Microsoft's greeting
    and EHLO lists, STARTTLS (TLS 1.2+ only, certificates made by make_test_ca.sh),
    AUTH XOAUTH2 checked with fake_tokens.verify() against entra-signing.key,
    MAIL/RCPT/DATA/BDAT with pipelining, SendAsDenied, at most N concurrent
    authenticated connections per mailbox, Microsoft's reply texts.
    It reads DIR/config.json (tenant, apps, mailboxes and their Send As rights)
    and DIR/faults.json (fault injection) again at each connection, and
    DIR/revoked.json / DIR/revoked at each AUTH.
    It writes every accepted message as DIR/mailbox/NNNNNN.eml (exact bytes after
    un-dot-stuffing) + NNNNNN.json (envelope; written last, by rename), an event
    log DIR/events.jsonl (one JSON object a line) and counters DIR/stats.json
    (rewritten atomically), incl. auth_before_tls / mail_before_tls.
  fake_o365.py revoke --state DIR (--jti ID ... | --all-before-now | --seen)
    Adds to DIR/revoked.json: given token ids, every token issued before now,
    or every token the fake has accepted so far (DIR/seen_jti).

Failure: bad command line or unreadable certificates -> message on stderr and
exit status 2 before "READY". A malformed config.json/faults.json is reported
in events.jsonl ("config_error") and treated as empty. Never logs token values
(only their jti).
Thread-safety: one thread per connection; shared state behind one lock.
"""
import argparse
import base64
import binascii
import email.parser
import email.policy
import email.utils
import json
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_tokens  # noqa: E402

EHLO_EXTENSIONS_PLAIN = ["SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES",
                         "STARTTLS", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
EHLO_EXTENSIONS_TLS = ["SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES",
                       "AUTH LOGIN XOAUTH2", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
STAGES = {"greeting", "ehlo", "starttls", "tls", "auth", "mail", "rcpt", "data", "body",
          "bdat", "eod", "rset", "noop", "quit"}
ACTIONS = {"disconnect", "stall", "reply", "no_starttls", "cert", "slow"}
MAX_LINE = 64 * 1024


class Closed(Exception):
    """The peer closed the connection, or the fake decided to drop it."""


def _now():
    return time.time()


def _lower_addr(a):
    a = a.strip()
    if "@" in a:
        local, dom = a.rsplit("@", 1)
        return local + "@" + dom.lower()
    return a


def _may_send_as(mailbox, rights, addr):
    addr_l = addr.lower()
    if addr_l == mailbox.lower():
        return True
    for r in rights:
        r = r.strip().lower()
        if r.startswith("@"):
            if addr_l.endswith(r):
                return True
        elif r == addr_l:
            return True
    return False


class State:
    """Everything shared between connections: files in the state dir, counters."""

    def __init__(self, state_dir, certs, hostname, seed):
        self.dir = state_dir
        self.certs = certs
        self.hostname = hostname
        self.internal_host = hostname.split(".")[0].replace("CA", "MB") + ".prod.outlook.office365.test"
        self.lock = threading.Lock()
        self.rand = random.Random(seed)
        self.key = fake_tokens.load_key(os.path.join(certs, "entra-signing.key"))
        self.conn_seq = 0
        self.msg_seq = 0
        self.active = {}  # mailbox -> authenticated connections now
        self.fault_sig = None
        self.fault_fired = {}  # rule index -> times fired, reset when faults.json changes
        self.stats = {"connections": 0, "tls_handshakes": 0, "tls_failures": 0,
                      "auth_attempts": 0, "auth_ok": 0, "auth_failed": 0,
                      "auth_before_tls": 0, "mail_before_tls": 0, "mail_commands": 0,
                      "rcpt_commands": 0, "messages": 0, "faults_fired": 0,
                      "concurrency_rejected": 0, "max_active": {}, "pipelining_violations": 0,
                      "plaintext_after_starttls": 0, "active_connections": 0}
        self.ctx_cache = {}
        os.makedirs(os.path.join(state_dir, "mailbox"), exist_ok=True)
        self.events = open(os.path.join(state_dir, "events.jsonl"), "a", buffering=1)
        self._write_stats()

    # --- files -------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.dir, name)

    def _write_json(self, name, obj):
        tmp = self.path("." + name + ".tmp%d" % threading.get_ident())
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path(name))

    def _write_stats(self):
        self._write_json("stats.json", self.stats)

    def event(self, conn, kind, **kw):
        rec = {"t": round(_now(), 6), "conn": conn, "event": kind}
        rec.update(kw)
        line = json.dumps(rec, sort_keys=True)
        with self.lock:
            self.events.write(line + "\n")

    def bump(self, name, n=1):
        with self.lock:
            self.stats[name] = self.stats.get(name, 0) + n
            self._write_stats()

    def read_json(self, name, default, conn):
        p = self.path(name)
        try:
            with open(p) as f:
                return json.load(f)
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as e:
            self.event(conn, "config_error", file=name, error=str(e))
            return default

    def new_conn(self):
        with self.lock:
            self.conn_seq += 1
            self.stats["connections"] += 1
            self.stats["active_connections"] += 1
            self._write_stats()
            return self.conn_seq

    def end_conn(self):
        with self.lock:
            self.stats["active_connections"] -= 1
            self._write_stats()

    # --- faults ------------------------------------------------------------
    def load_faults(self, conn):
        """Snapshot of faults.json for one connection. Counters reset when it changes."""
        p = self.path("faults.json")
        try:
            st = os.stat(p)
            with open(p, "rb") as f:
                raw = f.read()
            sig = (st.st_mtime_ns, st.st_size, hash(raw))
        except FileNotFoundError:
            raw, sig = b"", None
        with self.lock:
            if sig != self.fault_sig:
                self.fault_sig = sig
                self.fault_fired = {}
        if not raw.strip():
            return []
        try:
            doc = json.loads(raw)
            rules = doc["faults"] if isinstance(doc, dict) else doc
            out = []
            for i, r in enumerate(rules):
                if r.get("stage") not in STAGES or r.get("action", "reply") not in ACTIONS:
                    raise ValueError("rule %d: unknown stage or action: %r" % (i, r))
                r = dict(r)
                r.setdefault("action", "reply")
                r["_index"] = i
                out.append(r)
            return out
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.event(conn, "config_error", file="faults.json", error=str(e))
            return []

    def try_fire(self, rule):
        """Counts and probabilities: True when this rule fires now."""
        with self.lock:
            p = rule.get("probability")
            if p is not None and self.rand.random() >= float(p):
                return False
            n = self.fault_fired.get(rule["_index"], 0)
            if rule.get("count") is not None and n >= int(rule["count"]):
                return False
            self.fault_fired[rule["_index"]] = n + 1
            self.stats["faults_fired"] += 1
            self._write_stats()
            return True

    # --- auth / concurrency ------------------------------------------------
    def acquire_mailbox(self, mailbox, limit):
        with self.lock:
            n = self.active.get(mailbox, 0)
            if n >= limit:
                self.stats["concurrency_rejected"] += 1
                self._write_stats()
                return False
            self.active[mailbox] = n + 1
            m = self.stats["max_active"]
            m[mailbox] = max(m.get(mailbox, 0), n + 1)
            self._write_stats()
            return True

    def release_mailbox(self, mailbox):
        with self.lock:
            self.active[mailbox] -= 1

    def revoked(self, conn):
        doc = self.read_json("revoked.json", {}, conn)
        jtis = set(doc.get("jti", [])) if isinstance(doc, dict) else set()
        before = doc.get("issued_before", 0) if isinstance(doc, dict) else 0
        try:
            with open(self.path("revoked")) as f:
                jtis.update(x.strip() for x in f if x.strip())
        except FileNotFoundError:
            pass
        return jtis, before

    def saw_jti(self, jti):
        with self.lock:
            with open(self.path("seen_jti"), "a") as f:
                f.write(jti + "\n")

    # --- mailbox -----------------------------------------------------------
    def store(self, content, envelope):
        with self.lock:
            self.msg_seq += 1
            n = self.msg_seq
            self.stats["messages"] += 1
            self._write_stats()
        base = os.path.join(self.dir, "mailbox", "%06d" % n)
        with open(base + ".eml", "wb") as f:
            f.write(content)
        envelope["id"] = n
        tmp = base + ".json.tmp"
        with open(tmp, "w") as f:
            json.dump(envelope, f, indent=1, sort_keys=True)
        os.replace(tmp, base + ".json")
        return n

    # --- TLS ---------------------------------------------------------------
    def tls_context(self, which):
        with self.lock:
            ctx = self.ctx_cache.get(which)
            if ctx is None:
                name = {"server": "server", "wronghost": "wronghost", "rogue": "rogue"}.get(which)
                if name:
                    crt, key = (os.path.join(self.certs, name + ".crt"),
                                os.path.join(self.certs, name + ".key"))
                else:  # a path prefix: PATH.crt + PATH.key
                    crt, key = which + ".crt", which + ".key"
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(crt, key)
                self.ctx_cache[which] = ctx
            return ctx


class Session:
    """One SMTP connection."""

    def __init__(self, st, sock, peer):
        self.st = st
        self.sock = sock
        self.peer = peer
        self.id = st.new_conn()
        self.inbuf = bytearray()
        self.out = bytearray()
        self.slow = None  # per-byte delay when replies go one byte at a time
        self.tls = False
        self.tls_version = None
        self.ehlo_seen = False
        self.mailbox = None  # authenticated mailbox
        self.holds_slot = False
        self.body_checked = False
        self.cfg = st.read_json("config.json", {}, self.id)
        if not isinstance(self.cfg, dict):
            self.cfg = {}
        self.faults = st.load_faults(self.id)
        self.reset_txn()

    def reset_txn(self):
        self.mail_from = None
        self.mail_params = []
        self.rcpts = []
        self.rcpt_params = []
        self.bdat = None  # bytearray of chunks received so far

    def ev(self, kind, **kw):
        self.st.event(self.id, kind, **kw)

    # --- faults --------------------------------------------------------------
    def fault(self, stage, rcpt=None):
        for r in self.faults:
            if r["stage"] != stage or r["action"] == "slow":
                continue
            if "rcpt" in r and (rcpt is None or r["rcpt"].lower() != rcpt.lower()):
                continue
            if "tls" in r and bool(r["tls"]) != self.tls:
                continue
            if "mailbox" in r and (self.mailbox or "").lower() != r["mailbox"].lower():
                continue
            if self.st.try_fire(r):
                self.ev("fault", stage=stage, action=r["action"], rule=r["_index"],
                        reply=r.get("reply"))
                return r
        return None

    def apply(self, rule):
        """Carries out a disconnect/stall/reply rule. Returns True when it replied."""
        if rule.get("delay"):
            self.flush()
            time.sleep(float(rule["delay"]))
        act = rule["action"]
        if act == "disconnect":
            self.out.clear()
            raise Closed("fault: disconnect")
        if act == "stall":
            self.stall()
        if act == "reply":
            text = rule.get("reply", "451 4.3.0 Fault injected")
            self.reply_text(text)
            if rule.get("close", text[:3] == "421"):
                self.flush()
                raise Closed("fault: reply and close")
            return True
        return False

    def stall(self):
        self.flush()
        self.ev("stall")
        try:
            self.sock.settimeout(None)
            while self.sock.recv(65536):
                pass
        except (OSError, ssl.SSLError):
            pass
        raise Closed("stalled until peer closed")

    # --- I/O -----------------------------------------------------------------
    def reply(self, code, *lines):
        """reply(250, "a", "b") -> "250-a" "250 b"."""
        lines = lines or ("",)
        for i, l in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            self.out += ("%d%s%s\r\n" % (code, sep, l)).encode()

    def reply_text(self, text):
        """A free-form reply "NNN text" (lines separated by \\n)."""
        lines = text.split("\n")
        code = lines[0][:3]
        rest = [l[4:] if l[:3] == code else l for l in lines]
        self.reply(int(code), *rest)

    def flush(self):
        if not self.out:
            return
        data = bytes(self.out)
        self.out.clear()
        try:
            if self.slow is not None:
                for i in range(len(data)):
                    self.sock.sendall(data[i:i + 1])
                    if self.slow:
                        time.sleep(self.slow)
            else:
                self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            raise Closed("send failed: %s" % e)

    def recv_more(self, buf):
        self.flush()
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            self.ev("idle_timeout")
            self.reply(421, "4.4.2 %s Connection timed out" % self.st.hostname)
            raise Closed("idle timeout")
        except (OSError, ssl.SSLError) as e:
            raise Closed("recv failed: %s" % e)
        if not data:
            raise Closed("peer closed")
        buf += data

    def readline(self):
        start = 0
        while True:
            i = self.inbuf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.inbuf[:i])
                del self.inbuf[:i + 1]
                if line.endswith(b"\r"):
                    return line[:-1]
                self.ev("bare_lf_command")
                return line
            if len(self.inbuf) > MAX_LINE:
                self.reply(500, "5.5.2 Line too long")
                raise Closed("line too long")
            start = len(self.inbuf)
            self.recv_more(self.inbuf)

    def read_exact(self, n):
        while len(self.inbuf) < n:
            self.recv_more(self.inbuf)
        data = bytes(self.inbuf[:n])
        del self.inbuf[:n]
        return data

    def read_data(self):
        """Message content after 354 up to CRLF.CRLF, un-dot-stuffed."""
        buf = bytearray(b"\r\n")
        buf += self.inbuf
        self.inbuf = bytearray()
        start = 0
        while True:
            i = buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                self.inbuf = bytearray(buf[i + 5:])
                raw = bytes(buf[:i + 2])
                return raw.replace(b"\r\n.", b"\r\n")[2:]
            start = max(0, len(buf) - 4)
            if len(buf) > 2:
                self.body_fault(buf)
            self.recv_more(buf)

    def body_fault(self, buf):
        """Stage "body": fires once some content (not yet its final dot) has arrived
        after 354. disconnect: close with the rest unread; stall: stop reading (the
        client's writes block) for "hold" seconds (default 20) or until the peer goes."""
        if self.body_checked:
            return
        self.body_checked = True
        rule = self.fault("body")
        if not rule or rule["action"] not in ("disconnect", "stall"):
            return
        self.ev("body_fault", action=rule["action"], received=len(buf) - 2)
        if rule["action"] == "stall":
            self.hold(float(rule.get("hold", 20)))
        self.out.clear()
        raise Closed("fault: %s in the message body" % rule["action"])

    def hold(self, seconds):
        """Reads nothing for `seconds`; returns early when the peer hangs up. The
        mailbox slot is given back at once: a held connection must not count
        against the concurrency limit of later deliveries."""
        import select
        if self.holds_slot:
            self.st.release_mailbox(self.mailbox)
            self.holds_slot = False
        self.ev("stall")
        raw = self.sock.fileno()
        poller = select.poll()
        poller.register(raw, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        end = _now() + seconds
        while _now() < end:
            if poller.poll(200):
                break

    # --- the session -------------------------------------------------------
    def run(self):
        try:
            self.sock.settimeout(float(self.cfg.get("idle_timeout", self.st.idle_timeout)))
            self.ev("connect", peer=self.peer)
            for r in self.faults:
                if r["stage"] == "greeting" and r["action"] == "slow" and self.st.try_fire(r):
                    self.slow = float(r.get("delay", 0))
                    self.ev("fault", stage="greeting", action="slow", rule=r["_index"])
            rule = self.fault("greeting")
            if not (rule and self.apply(rule)):
                self.reply(220, "%s Microsoft ESMTP MAIL Service ready at %s" % (
                    self.st.hostname, time.strftime("%a, %-d %b %Y %H:%M:%S +0000", time.gmtime())))
            while True:
                line = self.readline()
                self.command(line)
        except Closed as e:
            self.ev("close", reason=str(e))
        except Exception as e:  # a bug in the fake: say so in the log
            self.ev("internal_error", error="%s: %s" % (type(e).__name__, e))
        finally:
            try:
                self.flush()
            except Closed:
                pass
            if self.holds_slot:
                self.st.release_mailbox(self.mailbox)
            try:
                self.sock.close()
            except OSError:
                pass
            self.st.end_conn()

    def command(self, line):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("latin-1")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        shown = text if verb != "AUTH" else " ".join(text.split(" ")[:2])
        self.ev("command", line=shown[:300], tls=self.tls)
        handler = {"EHLO": self.do_ehlo, "HELO": self.do_helo, "STARTTLS": self.do_starttls,
                   "AUTH": self.do_auth, "MAIL": self.do_mail, "RCPT": self.do_rcpt,
                   "DATA": self.do_data, "BDAT": self.do_bdat, "RSET": self.do_rset,
                   "NOOP": self.do_noop, "QUIT": self.do_quit}.get(verb)
        if handler is None:
            self.reply(500, "5.3.3 Unrecognized command '%s'" % verb[:40])
            return
        handler(arg)

    def do_ehlo(self, arg):
        if not arg.strip():
            self.reply(501, "5.5.4 Invalid domain name")
            return
        rule = self.fault("ehlo")
        no_tls = False
        if rule and rule["action"] == "no_starttls":
            no_tls = True
        elif rule and self.apply(rule):
            return
        self.ehlo_seen = True
        self.reset_txn()
        exts = EHLO_EXTENSIONS_TLS if self.tls else EHLO_EXTENSIONS_PLAIN
        if no_tls:
            exts = [e for e in exts if e != "STARTTLS"]
        self.reply(250, "%s Hello [%s]" % (self.st.hostname, self.peer[0]), *exts)

    def do_helo(self, arg):
        self.ehlo_seen = True
        self.reset_txn()
        self.reply(250, "%s Hello [%s]" % (self.st.hostname, self.peer[0]))

    def do_starttls(self, arg):
        if self.tls:
            self.reply(503, "5.5.1 Bad sequence of commands, already in TLS")
            return
        rule = self.fault("starttls")
        if rule and self.apply(rule):
            return
        self.reply(220, "2.0.0 SMTP server ready")
        self.flush()
        if self.inbuf:
            # Data pipelined after STARTTLS: a client bug (command injection). Discard it.
            self.st.bump("plaintext_after_starttls")
            self.ev("plaintext_after_starttls", bytes=len(self.inbuf))
            self.inbuf.clear()
        cert = "server"
        rule = self.fault("tls")
        if rule and rule["action"] == "cert":
            cert = rule.get("cert", "wronghost")
        elif rule:
            self.apply(rule)  # disconnect or stall before the handshake
        try:
            ctx = self.st.tls_context(cert)
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as e:
            self.st.bump("tls_failures")
            self.ev("tls_failed", cert=cert, error=str(e))
            raise Closed("TLS handshake failed")
        self.tls = True
        self.tls_version = self.sock.version()
        self.st.bump("tls_handshakes")
        self.ev("tls_ok", cert=cert, version=self.tls_version, cipher=self.sock.cipher()[0])
        self.ehlo_seen = False
        self.reset_txn()

    # --- AUTH ----------------------------------------------------------------
    def auth_fail(self, why, reply=None):
        self.st.bump("auth_failed")
        self.ev("auth_failed", why=why)
        if reply is None and self.cfg.get("auth_failure_334"):
            err = {"status": "401", "schemes": "bearer",
                   "scope": "https://outlook.office.com/SMTP.Send"}
            self.reply(334, base64.b64encode(json.dumps(err).encode()).decode())
            line = self.readline()
            self.ev("auth_334_answered")
            if line != b"":
                self.ev("auth_334_answer_not_empty", length=len(line))
        self.reply_text(reply or "535 5.7.3 Authentication unsuccessful [%s]" % self.st.internal_host)

    def do_auth(self, arg):
        self.st.bump("auth_attempts")
        parts = arg.split()
        if not self.tls:
            self.st.bump("auth_before_tls")
            self.ev("auth_before_tls")
            self.reply(504, "5.7.4 Unrecognized authentication type [%s]" % self.st.internal_host)
            return
        if not self.ehlo_seen:
            self.reply(503, "5.5.2 Send hello first [%s]" % self.st.internal_host)
            return
        if self.mailbox:
            self.reply(503, "5.5.2 Already authenticated")
            return
        if not parts:
            self.reply(501, "5.5.4 Syntax error in parameters or arguments")
            return
        mech = parts[0].upper()
        if mech == "LOGIN":
            self.reply(334, "VXNlcm5hbWU6")
            self.readline()
            self.reply(334, "UGFzc3dvcmQ6")
            self.readline()
            self.auth_fail("basic auth", "535 5.7.139 Authentication unsuccessful, basic "
                           "authentication is disabled. [%s]" % self.st.internal_host)
            return
        if mech != "XOAUTH2":
            self.reply(504, "5.7.4 Unrecognized authentication type [%s]" % self.st.internal_host)
            return
        inline = len(parts) > 1
        if inline:
            b64 = parts[1].encode()
        else:
            self.reply(334, "")
            b64 = self.readline()
            if b64 == b"*":
                self.reply(501, "5.0.0 Authentication cancelled")
                return
        self.ev("auth_xoauth2", initial_response=inline, length=len(b64))
        rule = self.fault("auth")
        if rule and self.apply(rule):
            self.st.bump("auth_failed")
            return
        try:
            raw = base64.b64decode(b64, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self.auth_fail("bad base64")
            return
        fields = {}
        if not raw.endswith("\x01\x01"):
            self.auth_fail("malformed XOAUTH2 string")
            return
        for kv in raw[:-2].split("\x01"):
            k, _, v = kv.partition("=")
            fields[k] = v
        user = fields.get("user", "")
        bearer = fields.get("auth", "")
        if not user or not bearer.startswith("Bearer "):
            self.auth_fail("malformed XOAUTH2 string")
            return
        self.check_token(user, bearer[len("Bearer "):])

    def check_token(self, user, token):
        claims = fake_tokens.verify(self.st.key, token)
        if claims is None:
            self.auth_fail("token signature or expiry")
            return
        jti = claims.get("jti", "")
        jtis, before = self.st.revoked(self.id)
        if jti in jtis or claims.get("iat", 0) < before:
            self.auth_fail("token revoked", None)
            return
        cfg = self.cfg
        tenants = cfg.get("tenant")
        if tenants is not None:
            tenants = [tenants] if isinstance(tenants, str) else tenants
            if claims.get("tid") not in tenants:
                self.auth_fail("wrong tenant %r" % claims.get("tid"))
                return
        mailboxes = cfg.get("mailboxes")
        mb_key = None
        if mailboxes is not None:
            for k in mailboxes:
                if k.lower() == user.lower():
                    mb_key = k
            if mb_key is None:
                self.auth_fail("unknown mailbox %s" % user)
                return
        mb = (mailboxes or {}).get(mb_key, {}) if mb_key else {}
        scp = claims.get("scp", "")
        if claims.get("mbx"):
            if claims["mbx"].lower() != user.lower():
                self.auth_fail("delegated token of %s used for %s" % (claims["mbx"], user))
                return
            if cfg.get("check_scope", True) and "SMTP.Send" not in scp:
                self.auth_fail("delegated token without SMTP.Send")
                return
        else:
            apps = mb.get("apps", cfg.get("apps"))
            if apps is not None and claims.get("appid") not in apps:
                self.auth_fail("app %s has no access to %s" % (claims.get("appid"), user))
                return
            if cfg.get("check_scope", True) and not scp.endswith("outlook.office365.com/.default"):
                self.auth_fail("app-only token with scope %r" % scp)
                return
        if mb.get("smtp_auth", True) is False:
            self.auth_fail("smtp auth disabled",
                           "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
                           "disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for "
                           "more information. [%s]" % self.st.internal_host)
            return
        limit = int(mb.get("max_connections", cfg.get("max_connections_per_mailbox", 3)))
        if not self.st.acquire_mailbox(user.lower(), limit):
            self.ev("concurrency_rejected", mailbox=user)
            self.reply(432, "4.3.2 Concurrent connections limit exceeded. Visit "
                       "https://aka.ms/concurrent_sending for more information. [Hostname=%s]"
                       % self.st.internal_host)
            return
        self.holds_slot = True
        self.mailbox = user.lower()
        self.send_as = [user.lower()] + [a.lower() for a in mb.get("send_as", [])]
        self.st.saw_jti(jti)
        self.st.bump("auth_ok")
        self.ev("auth_ok", mailbox=user, jti=jti, app=claims.get("appid"))
        self.reply(235, "2.7.0 Authentication successful")

    # --- mail transaction -----------------------------------------------------
    def need_auth(self):
        self.reply(530, "5.7.57 Client not authenticated to send mail. [%s]"
                   % self.st.internal_host)

    @staticmethod
    def parse_path(arg, keyword):
        """'FROM:<a@b> SIZE=1' -> ('a@b', ['SIZE=1']) or None."""
        if arg[:len(keyword)].upper() != keyword:
            return None
        rest = arg[len(keyword):].lstrip()
        if not rest.startswith("<"):
            return None
        end = rest.find(">")
        if end < 0:
            return None
        return rest[1:end], rest[end + 1:].split()

    def do_mail(self, arg):
        self.st.bump("mail_commands")
        if not self.tls:
            self.st.bump("mail_before_tls")
            self.ev("mail_before_tls")
        if not self.mailbox:
            self.need_auth()
            return
        if self.mail_from is not None:
            self.reply(503, "5.5.2 Sender already specified")
            return
        p = self.parse_path(arg, "FROM:")
        if p is None:
            self.reply(501, "5.1.7 Invalid address")
            return
        addr, params = p
        if any(ord(c) < 32 or ord(c) == 127 for c in addr):
            self.reply(501, "5.1.7 Invalid address")
            return
        rule = self.fault("mail")
        if rule and self.apply(rule):
            return
        for prm in params:
            if prm.upper().startswith("SIZE="):
                try:
                    if int(prm[5:]) > int(self.cfg.get("max_size", 157286400)):
                        self.reply(552, "5.3.4 Message size exceeds fixed maximum message size")
                        return
                except ValueError:
                    self.reply(501, "5.5.4 Invalid SIZE parameter")
                    return
        self.mail_from = addr
        self.mail_params = params
        self.reply(250, "2.1.0 Sender OK")

    def do_rcpt(self, arg):
        self.st.bump("rcpt_commands")
        if not self.mailbox:
            self.need_auth()
            return
        if self.mail_from is None:
            self.reply(503, "5.5.1 Need mail command")
            return
        p = self.parse_path(arg, "TO:")
        if p is None or "@" not in p[0] or any(ord(c) < 32 or ord(c) == 127 for c in p[0]):
            self.reply(501, "5.1.3 Invalid address")
            return
        addr, params = p
        rule = self.fault("rcpt", rcpt=addr)
        if rule and self.apply(rule):
            return
        if len(self.rcpts) >= int(self.cfg.get("max_recipients", 500)):
            self.reply(452, "4.5.3 Too many recipients")
            return
        self.rcpts.append(addr)
        self.rcpt_params.append(params)
        self.reply(250, "2.1.5 Recipient OK")

    def do_data(self, arg):
        if not self.mailbox:
            self.need_auth()
            return
        if self.bdat is not None:
            self.reply(503, "5.5.1 Bad sequence of commands")
            return
        if self.mail_from is None:
            self.reply(503, "5.5.1 Need mail command")
            return
        if not self.rcpts:
            self.reply(503, "5.5.2 Need rcpt command")
            return
        rule = self.fault("data")
        if rule and self.apply(rule):
            return
        if self.inbuf:
            # The client sent content before it saw 354.
            self.st.bump("pipelining_violations")
            self.ev("data_before_354", bytes=len(self.inbuf))
        self.reply(354, "Start mail input; end with <CRLF>.<CRLF>")
        content = self.read_data()
        self.end_of_message(content, "DATA")

    def do_bdat(self, arg):
        parts = arg.split()
        try:
            size = int(parts[0])
            last = len(parts) > 1 and parts[1].upper() == "LAST"
            if size < 0 or len(parts) > 2 or (len(parts) == 2 and not last):
                raise ValueError
        except (ValueError, IndexError):
            self.reply(501, "5.5.4 Invalid arguments")
            return
        chunk = self.read_exact(size)  # the chunk is always consumed
        if not self.mailbox:
            self.need_auth()
            return
        if self.mail_from is None or not self.rcpts:
            self.reply(503, "5.5.1 Bad sequence of commands")
            return
        if self.bdat is None:
            self.bdat = bytearray()
        self.bdat += chunk
        if not last:
            rule = self.fault("bdat")
            if rule and self.apply(rule):
                self.reset_txn()
                return
            self.reply(250, "2.6.0 CHUNK received OK, %d octets" % size)
            return
        content = bytes(self.bdat)
        self.end_of_message(content, "BDAT")

    def header_from(self, content):
        end = content.find(b"\r\n\r\n")
        head = content[:end + 2] if end >= 0 else content
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
        froms = [a for _, a in email.utils.getaddresses(
            [str(v) for v in msg.get_all("From", [])]) if a]
        mid = msg.get("Message-ID")
        return froms, (str(mid).strip() if mid else None)

    def end_of_message(self, content, via):
        mail_from, rcpts = self.mail_from, self.rcpts
        envelope = {"conn": self.id, "mailbox": self.mailbox, "mail_from": mail_from,
                    "mail_params": self.mail_params, "rcpt_to": rcpts,
                    "rcpt_params": self.rcpt_params, "via": via, "size": len(content),
                    "tls_version": self.tls_version, "received_at": _now(),
                    "bare_lf": content.count(b"\n") - content.count(b"\r\n"),
                    "bare_cr": content.count(b"\r") - content.count(b"\r\n")}
        self.reset_txn()
        rule = self.fault("eod")
        ok_reply = None
        if rule:
            if rule["action"] == "reply" and rule.get("reply", "")[:1] == "2":
                ok_reply = rule["reply"]  # accepted, with this reply text
                if rule.get("delay"):  # a slow acceptance: stored after the delay
                    self.ev("eod_delay", delay=float(rule["delay"]))
                    time.sleep(float(rule["delay"]))
            elif self.apply(rule):
                return
        if len(content) > int(self.cfg.get("max_size", 157286400)):
            self.reply(552, "5.3.4 Message size exceeds fixed maximum message size")
            return
        froms, mid = self.header_from(content)
        envelope["header_from"] = froms
        for a in ([mail_from] if mail_from != "" else []) + froms:
            if not _may_send_as(self.mailbox, self.send_as[1:], a):
                self.ev("send_as_denied", address=a)
                self.reply(554, "5.2.252 SendAsDenied; %s not allowed to send as %s; "
                           "STOREDRV.Submission.Exception:SendAsDeniedException."
                           "MapiExceptionSendAsDenied; Failed to process message due to a "
                           "permanent exception with message [BeginDiagnosticData]Cannot submit "
                           "message. [EndDiagnosticData] [Hostname=%s]"
                           % (self.mailbox, a, self.st.internal_host))
                return
        if mail_from == "" and not froms:
            self.reply(554, "5.2.252 SendAsDenied; %s not allowed to send as <>; "
                       "STOREDRV.Submission.Exception:SendAsDeniedException."
                       "MapiExceptionSendAsDenied [Hostname=%s]"
                       % (self.mailbox, self.st.internal_host))
            return
        n = self.st.store(content, envelope)
        if not mid:
            mid = "<FAKE%06d@%s>" % (n, self.st.internal_host)
        self.ev("message", id=n, size=len(content), rcpts=len(rcpts), via=via)
        if ok_reply:
            self.reply_text(ok_reply)
        else:
            self.reply(250, "2.0.0 OK %s [Hostname=%s]" % (mid, self.st.internal_host))

    def do_rset(self, arg):
        rule = self.fault("rset")
        if rule and self.apply(rule):
            return
        self.reset_txn()
        self.reply(250, "2.0.0 Resetting")

    def do_noop(self, arg):
        rule = self.fault("noop")
        if rule and self.apply(rule):
            return
        self.reply(250, "2.0.0 OK")

    def do_quit(self, arg):
        rule = self.fault("quit")
        if not (rule and self.apply(rule)):
            self.reply(221, "2.0.0 Service closing transmission channel")
        self.flush()
        raise Closed("quit")


def serve(args):
    st = State(args.state, args.certs, args.hostname, args.seed)
    st.idle_timeout = args.idle_timeout
    st.tls_context("server")  # fail early on bad certificates
    srv = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(256)
    port = srv.getsockname()[1]
    with open(os.path.join(args.state, "port"), "w") as f:
        f.write("%d\n" % port)
    print("READY %d" % port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        try:
            sock, peer = srv.accept()
        except InterruptedError:
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = Session(st, sock, peer)
        threading.Thread(target=s.run, daemon=True).start()


def revoke(args):
    p = os.path.join(args.state, "revoked.json")
    try:
        with open(p) as f:
            doc = json.load(f)
    except FileNotFoundError:
        doc = {}
    jtis = set(doc.get("jti", []))
    jtis.update(args.jti or [])
    if args.seen or args.all_before_now:
        try:
            with open(os.path.join(args.state, "seen_jti")) as f:
                jtis.update(x.strip() for x in f if x.strip())
        except FileNotFoundError:
            pass
    doc["jti"] = sorted(jtis)
    if args.all_before_now:
        # iat has whole seconds: tokens of this second not yet seen stay valid
        doc["issued_before"] = int(time.time())
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--state", required=True)
    s.add_argument("--certs", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--hostname", default="FAKE01CA0001.outlook.office365.test")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--idle-timeout", type=float, default=600.0)
    r = sub.add_parser("revoke")
    r.add_argument("--state", required=True)
    r.add_argument("--jti", action="append")
    r.add_argument("--all-before-now", action="store_true")
    r.add_argument("--seen", action="store_true")
    args = ap.parse_args()
    if args.cmd == "serve":
        try:
            serve(args)
        except (OSError, ssl.SSLError) as e:
            print("fake_o365: %s" % e, file=sys.stderr)
            sys.exit(2)
    else:
        revoke(args)


if __name__ == "__main__":
    main()
