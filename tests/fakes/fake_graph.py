#!/usr/bin/env python3
"""fake_graph.py: a fake Microsoft Graph (mail sending) for tests (python3 stdlib only).

Contract (details and file formats in tests/fakes/README.md, "fake Microsoft Graph"):
  fake_graph.py serve --state DIR --certs DIR [--host 127.0.0.1] [--port 0] [--seed N]
    Serves HTTPS (TLS 1.2+, server.crt/key made by make_test_ca.sh) on loopback (port 0 =
    a free port), writes DIR/port, prints "READY <port>" on stdout once listening, one
    thread per connection (HTTP/1.1 keep-alive) until SIGTERM. It plays Graph v1.0 mail
    sending: POST /v1.0/users/{m}/sendMail (MIME as base64 text/plain, or JSON),
    POST .../messages (draft), PATCH/GET/DELETE .../messages/{id}, POST .../messages/{id}/send.
    Bearer tokens are checked with fake_tokens.verify() against entra-signing.key (audience
    = scope https://graph.microsoft.com/.default, or Mail.Send for delegated tokens),
    revocation as fake_o365 (DIR/revoked.json, DIR/revoked). Send As, unknown and
    on-premises mailboxes, quota, the 4 MB request limit, 4 concurrent requests per mailbox
    and a request-rate limit answer with Graph's status codes and JSON errors.
    DIR/config.json and DIR/faults.json are re-read at every request.
    Every delivered message: a line in DIR/deliveries.jsonl (exact MIME, recipients,
    method), DIR/sent/NNNNNN.eml (the sender's copy, exact bytes) and
    DIR/mailbox/<recipient>/NNNNNN.eml (what each recipient gets: no Bcc header).
    Counters in DIR/stats.json, one line per request in DIR/events.jsonl.
  fake_graph.py revoke --state DIR (--jti ID ... | --seen | --all-before-now)
    As fake_o365.py revoke (same files).

Failure: bad command line or certificates -> message on stderr and exit status 2 before
"READY". A malformed config.json/faults.json is logged in events.jsonl ("config_error")
and treated as empty. Never logs a token (only its jti).
Thread-safety: one thread per connection; all shared state behind one lock.
"""
import argparse
import base64
import binascii
import collections
import email.parser
import email.policy
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_tokens  # noqa: E402

GRAPH = "https://graph.microsoft.com/"  # the audience: scopes start with it
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # 4,194,304: Graph's limit for one request
MAX_CONCURRENCY = 4  # Outlook's limit per app and mailbox
RATE_LIMIT = (10000, 600)  # requests per seconds, per app and mailbox
ROUTES = ("sendMail", "createMessage", "getMessage", "updateMessage", "deleteMessage",
          "sendDraft", "other")
ACTIONS = ("reply", "close", "close_before_body", "stall", "delay")

# Graph's error answers: name -> (status, code, message). Texts are Microsoft's where known.
ERRORS = {
    "no_token": (401, "InvalidAuthenticationToken", "Access token is empty."),
    "bad_token": (401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed."),
    "expired": (401, "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired."),
    "revoked": (401, "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid."),
    "audience": (401, "InvalidAuthenticationToken",
                 "Access token validation failure. Invalid audience."),
    "issuer": (401, "InvalidAuthenticationToken",
               "Access token validation failure. Invalid issuer."),
    "access_denied": (403, "ErrorAccessDenied",
                      "Access is denied. Check credentials and try again."),
    "send_as": (403, "ErrorSendAsDenied",
                "The user account which was used to submit this request does not have the "
                "right to send mail on behalf of the specified sending account., Cannot "
                "submit message."),
    "invalid_user": (404, "ErrorInvalidUser", "The requested user '{mailbox}' is invalid."),
    "on_premises": (404, "MailboxNotEnabledForRESTAPI",
                    "The mailbox is either inactive, soft-deleted, or is hosted on-premise."),
    "quota": (403, "ErrorQuotaExceeded", "Mailbox has exceeded maximum mailbox size."),
    "no_recipients": (400, "ErrorInvalidRecipients",
                      "A message can't be sent because it contains no recipients"),
    "bad_recipient": (400, "ErrorInvalidRecipients",
                      "At least one recipient is not valid., Recipient '{address}' is not "
                      "resolved. All recipients must be resolved before a message can be "
                      "submitted."),
    "bad_base64": (400, "ErrorMimeContentInvalidBase64String",
                   "Invalid base64 string for MIME content."),
    "bad_json": (400, "BadRequest",
                 "Unable to read JSON request payload. Please ensure Content-Type header is "
                 "set and payload is of valid JSON format."),
    "media_type": (415, "UnsupportedMediaType",
                   "The content type '{ctype}' is not supported for this request."),
    "length_required": (411, "LengthRequired", "A Content-Length header is required."),
    "too_large": (413, "ErrorRequestEntityTooLarge",
                  "The maximum request length supported is 4MB."),
    "concurrency": (429, "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit."),
    "rate": (429, "ApplicationThrottled", "Application is over its RequestRate limit."),
    "not_found": (404, "ErrorItemNotFound", "The specified object was not found in the store."),
    "segment": (400, "BadRequest", "Resource not found for the segment '{segment}'."),
    "method": (405, "BadRequest",
               "The HTTP method '{method}' is not allowed for this resource."),
    "fault": (503, "ServiceUnavailable", "Service unavailable (fault injected)."),
}


def _now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def _as_list(v):
    if v is None:
        return None
    return [v] if isinstance(v, str) else list(v)


def _may_send_as(mailbox, rights, addr):
    """The mailbox itself, or an address / "@domain" entry of its send_as list."""
    a = addr.lower()
    if a == mailbox.lower():
        return True
    for r in rights:
        r = r.strip().lower()
        if (r.startswith("@") and a.endswith(r)) or r == a:
            return True
    return False


def signed_but_expired(key, token):
    """True when the token carries a good signature but its exp has passed."""
    try:
        payload, sig = token.split(".")
        want = fake_tokens._b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
        return hmac.compare_digest(want, sig) and \
            json.loads(fake_tokens._unb64(payload))["exp"] <= int(time.time())
    except (ValueError, KeyError, TypeError):
        return False


def _recipient_json(addr, name=""):
    return {"emailAddress": {"name": name or addr, "address": addr}}


class GraphError(Exception):
    """An answer in Graph's error shape: status, code, message (and extra headers)."""

    def __init__(self, name, headers=None, status=None, code=None, message=None, **fmt):
        base = ERRORS[name]
        self.status = status or base[0]
        self.code = code or base[1]
        text = message if message is not None else base[2]
        self.message = text.format(**fmt) if fmt else text
        self.headers = headers or {}
        super().__init__("%d %s" % (self.status, self.code))


# --- MIME ----------------------------------------------------------------------------------
def split_head(mime):
    """(header block incl. its last CRLF, rest) of a message; bare-LF tolerant."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = mime.find(sep)
        if i >= 0:
            return mime[:i + len(sep) // 2], mime[i + len(sep) // 2:]
    return mime, b""


def header_fields(head):
    """[(name, raw field bytes incl. continuation lines)] in order."""
    out = []
    for line in re.split(rb"(?<=\n)", head):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + line)
        else:
            out.append((line.split(b":", 1)[0].strip().decode("latin-1").lower(), line))
    return out


def parse_headers(mime):
    head, _ = split_head(mime)
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)


def addresses(msg, name):
    return [a for _, a in email.utils.getaddresses([str(v) for v in msg.get_all(name, [])])
            if a]


def recipient_copy(mime, to=None, cc=None):
    """What a recipient receives: the message without its Bcc header; with to/cc given
    (a sent draft, whose MIME Exchange rebuilds from the item) To and Cc say those lists."""
    head, body = split_head(mime)
    drop = {"bcc"} | ({"to", "cc"} if to is not None else set())
    kept = [raw for name, raw in header_fields(head) if name not in drop]
    new = []
    if to is not None:
        eol = b"\r\n"
        if to:
            new.append(b"To: " + ", ".join(to).encode() + eol)
        if cc:
            new.append(b"Cc: " + ", ".join(cc).encode() + eol)
    return b"".join(new + kept) + body


def mime_from_json(mailbox, m):
    """A plain MIME rendering of a JSON message resource (for JSON sendMail/drafts)."""
    def lst(key):
        return ", ".join(r.get("emailAddress", {}).get("address", "") for r in m.get(key) or [])
    frm = ((m.get("from") or {}).get("emailAddress") or {}).get("address") or mailbox
    body = m.get("body") or {}
    ctype = "text/html" if str(body.get("contentType", "")).lower() == "html" else "text/plain"
    lines = ["From: " + frm]
    for hdr, key in (("To", "toRecipients"), ("Cc", "ccRecipients"), ("Bcc", "bccRecipients")):
        if lst(key):
            lines.append("%s: %s" % (hdr, lst(key)))
    lines += ["Subject: " + str(m.get("subject", "")),
              "Date: " + email.utils.formatdate(usegmt=True),
              "Message-ID: <%s@fake-graph.test>" % uuid.uuid4().hex,
              "MIME-Version: 1.0", "Content-Type: %s; charset=utf-8" % ctype, "", ""]
    return "\r\n".join(lines).encode() + str(body.get("content", "")).encode() + b"\r\n"


class Draft:
    """A message in the Drafts folder: its MIME as created, and its current properties."""

    def __init__(self, mailbox, mime):
        self.id = ("AAMkAGFha2UtZ3JhcGgARgAAA" +
                   base64.urlsafe_b64encode(os.urandom(24)).decode() + "AAA=")
        self.mailbox = mailbox
        self.mime = mime
        msg = parse_headers(mime)
        self.to = addresses(msg, "To")
        self.cc = addresses(msg, "Cc")
        self.bcc = addresses(msg, "Bcc")
        self.froms = addresses(msg, "From")
        self.subject = str(msg.get("Subject") or "")
        mid = msg.get("Message-ID")
        self.message_id = str(mid).strip() if mid else "<%s@fake-graph.test>" % uuid.uuid4().hex
        self.created = _now_iso() + "Z"
        self.modified = self.created

    def resource(self):
        frm = self.froms[0] if self.froms else self.mailbox
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('%s')/"
                              "messages/$entity" % self.mailbox,
            "@odata.etag": 'W/"%s"' % hashlib.sha256(self.modified.encode() +
                                                     self.id.encode()).hexdigest()[:24],
            "id": self.id, "createdDateTime": self.created,
            "lastModifiedDateTime": self.modified, "subject": self.subject,
            "internetMessageId": self.message_id, "isDraft": True, "isRead": True,
            "importance": "normal", "hasAttachments": False,
            "from": _recipient_json(frm), "sender": _recipient_json(frm),
            "toRecipients": [_recipient_json(a) for a in self.to],
            "ccRecipients": [_recipient_json(a) for a in self.cc],
            "bccRecipients": [_recipient_json(a) for a in self.bcc],
            "replyTo": []}


class State:
    """Files in the state directory, counters, drafts, concurrency: one lock."""

    def __init__(self, state_dir, certs, seed):
        self.dir = state_dir
        self.certs = certs
        self.lock = threading.Lock()
        self.rand = random.Random(seed)
        self.key = fake_tokens.load_key(os.path.join(certs, "entra-signing.key"))
        self.fault_sig = None
        self.fault_fired = {}
        self.in_flight = {}
        self.rate = {}  # (app, mailbox) -> deque of request times
        self.drafts = {}  # (mailbox lowercased, id) -> Draft
        self.seq = 0
        self.stats = {"requests": 0, "by_route": {}, "by_status": {}, "by_route_status": {},
                      "tokens_seen": {}, "max_concurrency": {}, "concurrency_rejected": 0,
                      "rate_rejected": 0, "faults_fired": 0, "deliveries": 0,
                      "recipient_copies": 0, "drafts_created": 0, "drafts_live": 0}
        for d in ("sent", "mailbox"):
            os.makedirs(os.path.join(state_dir, d), exist_ok=True)
        self.events = open(os.path.join(state_dir, "events.jsonl"), "a", buffering=1)
        self._write_json("stats.json", self.stats)
        self._write_json("drafts.json", {})

    # --- files ---------------------------------------------------------------------------
    def path(self, *names):
        return os.path.join(self.dir, *names)

    def _write_json(self, name, obj):
        tmp = self.path(".%s.tmp%d" % (name, threading.get_ident()))
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path(name))

    def event(self, kind, **kw):
        rec = {"t": round(time.time(), 6), "event": kind}
        rec.update(kw)
        with self.lock:
            self.events.write(json.dumps(rec, sort_keys=True) + "\n")

    def read_json(self, name, default):
        try:
            with open(self.path(name)) as f:
                text = f.read()
            return json.loads(text) if text.strip() else default
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as e:
            self.event("config_error", file=name, error=str(e))
            return default

    def config(self):
        c = self.read_json("config.json", {})
        return c if isinstance(c, dict) else {}

    # --- counters (written before the answer leaves, so tests see their own request) -----
    def count(self, *pairs):
        """count(("by_route", "sendMail"), ("requests", None), ...)."""
        with self.lock:
            for key, sub in pairs:
                if sub is None:
                    self.stats[key] = self.stats.get(key, 0) + 1
                else:
                    d = self.stats.setdefault(key, {})
                    d[sub] = d.get(sub, 0) + 1
            self._write_json("stats.json", self.stats)

    # --- concurrency and request rate ------------------------------------------------
    def enter(self, mailbox, limit):
        """Counts one more request in flight for mailbox; False when over the limit."""
        with self.lock:
            n = self.in_flight.get(mailbox, 0) + 1
            self.in_flight[mailbox] = n
            m = self.stats["max_concurrency"]
            m[mailbox] = max(m.get(mailbox, 0), n)
            if n > limit:
                self.stats["concurrency_rejected"] += 1
            self._write_json("stats.json", self.stats)
            return n <= limit

    def leave(self, mailbox):
        with self.lock:
            self.in_flight[mailbox] -= 1

    def rate_ok(self, key, limit, window):
        """None when under the limit, else the seconds until a request is allowed."""
        now = time.time()
        with self.lock:
            q = self.rate.setdefault(key, collections.deque())
            while q and q[0] <= now - window:
                q.popleft()
            if len(q) >= limit:
                self.stats["rate_rejected"] += 1
                self._write_json("stats.json", self.stats)
                return max(1, int(q[0] + window - now + 0.999))
            q.append(now)
            return None

    # --- faults ------------------------------------------------------------------------
    def faults(self):
        """The rules of faults.json; fired counts restart when the file changes."""
        try:
            with open(self.path("faults.json"), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b""
        with self.lock:
            if raw != self.fault_sig:
                self.fault_sig = raw
                self.fault_fired = {}
        if not raw.strip():
            return []
        try:
            doc = json.loads(raw)
            rules = doc["faults"] if isinstance(doc, dict) else doc
            out = []
            for i, r in enumerate(rules):
                act = r.get("action", "reply")
                if act not in ACTIONS or r.get("route", "*") not in ROUTES + ("*",):
                    raise ValueError("rule %d: unknown action or route: %r" % (i, r))
                out.append(dict(r, action=act, _index=i))
            return out
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.event("config_error", file="faults.json", error=str(e))
            return []

    def fire(self, rule):
        with self.lock:
            p = rule.get("probability")
            if p is not None and self.rand.random() >= float(p):
                return False
            n = self.fault_fired.get(rule["_index"], 0)
            if rule.get("count") is not None and n >= int(rule["count"]):
                return False
            self.fault_fired[rule["_index"]] = n + 1
            self.stats["faults_fired"] += 1
            self._write_json("stats.json", self.stats)
            return True

    # --- tokens --------------------------------------------------------------------------
    def revoked(self):
        doc = self.read_json("revoked.json", {})
        doc = doc if isinstance(doc, dict) else {}
        jtis = set(doc.get("jti", []))
        try:
            with open(self.path("revoked")) as f:
                jtis.update(x.strip() for x in f if x.strip())
        except FileNotFoundError:
            pass
        return jtis, doc.get("issued_before", 0)

    def saw_token(self, jti):
        with self.lock:
            first = jti not in self.stats["tokens_seen"]
            if first:
                with open(self.path("seen_jti"), "a") as f:
                    f.write(jti + "\n")
        self.count(("tokens_seen", jti))

    # --- drafts ------------------------------------------------------------------------
    def _save_drafts(self):
        live = {}
        for (mb, i) in self.drafts:
            live.setdefault(mb, []).append(i)
        self.stats["drafts_live"] = len(self.drafts)
        self._write_json("drafts.json", live)
        self._write_json("stats.json", self.stats)

    def add_draft(self, d):
        with self.lock:
            self.drafts[(d.mailbox.lower(), d.id)] = d
            self.stats["drafts_created"] += 1
            self._save_drafts()

    def get_draft(self, mailbox, mid):
        with self.lock:
            return self.drafts.get((mailbox.lower(), mid))

    def pop_draft(self, mailbox, mid):
        with self.lock:
            d = self.drafts.pop((mailbox.lower(), mid), None)
            self._save_drafts()
            return d

    # --- deliveries ----------------------------------------------------------------------
    def deliver(self, record, mime, copies):
        """record: the deliveries.jsonl line (without id); mime: the sender's copy;
        copies: {recipient: bytes}. Files first, the log line last."""
        with self.lock:
            self.seq += 1
            n = self.seq
        name = "%06d.eml" % n
        with open(self.path("sent", name), "wb") as f:
            f.write(mime)
        for rcpt, data in copies.items():
            d = self.path("mailbox", rcpt.lower().replace("/", "_"))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        record = dict(record, id=n, size=len(mime), sha256=hashlib.sha256(mime).hexdigest(),
                      mime_b64=base64.b64encode(mime).decode(), received_at=time.time(),
                      bare_lf=mime.count(b"\n") - mime.count(b"\r\n"))
        with self.lock:
            with open(self.path("deliveries.jsonl"), "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            self.stats["deliveries"] += 1
            self.stats["recipient_copies"] += len(copies)
            self._write_json("stats.json", self.stats)
        return n


class Request:
    """One parsed request: route, mailbox, message id (the path's parts)."""

    def __init__(self, method, path):
        self.method = method
        raw = urllib.parse.urlsplit(path).path
        parts = [urllib.parse.unquote(p) for p in raw.strip("/").split("/")]
        self.route, self.mailbox, self.message_id, self.bad_segment = "other", "", None, None
        if len(parts) < 4 or parts[0] != "v1.0" or parts[1].lower() != "users":
            self.bad_segment = parts[0] if parts and parts[0] != "v1.0" else (
                parts[1] if len(parts) > 1 else "")
            return
        self.mailbox = parts[2]
        rest = [p.lower() for p in parts[3:]]
        table = {  # (method, shape) -> route
            ("POST", ("sendmail",)): "sendMail",
            ("POST", ("messages",)): "createMessage",
            ("GET", ("messages", "*")): "getMessage",
            ("PATCH", ("messages", "*")): "updateMessage",
            ("DELETE", ("messages", "*")): "deleteMessage",
            ("POST", ("messages", "*", "send")): "sendDraft",
        }
        shape = tuple("*" if i == 1 else p for i, p in enumerate(rest))
        if len(rest) >= 2 and rest[0] == "messages":
            self.message_id = parts[4]
        self.route = table.get((method, shape), "other")
        if self.route == "other":
            known = {s for (_, s) in table}
            self.bad_segment = None if shape in known else parts[-1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-graph"
    sys_version = ""

    def setup(self):
        self.request.settimeout(float(self.server.idle_timeout))
        try:
            self.request.do_handshake()
            self.handshake_ok = True
        except (ssl.SSLError, OSError) as e:
            self.server.state.event("tls_failed", error=str(e))
            self.handshake_ok = False
        super().setup()

    def handle(self):
        if self.handshake_ok:
            try:
                super().handle()
            except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
                pass

    def log_message(self, fmt, *args):
        pass

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = lambda self: self.serve()

    # --- the request, step by step ---------------------------------------------------------
    def serve(self):
        st = self.server.state
        cfg = st.config()
        req = Request(self.command, self.path)
        self.req, self.cfg = req, cfg
        self.request_id = str(uuid.uuid4())
        self.status, self.code, self.jti, self.fired = None, None, None, None
        st.count(("requests", None), ("by_route", req.route))
        slot = req.mailbox.lower() or "-"
        allowed = st.enter(slot, int(cfg.get("max_concurrency", MAX_CONCURRENCY)))
        try:
            answer = self.steps(st, cfg, req, allowed)
            if answer is not None:
                self.send(*answer)
        except GraphError as e:
            self.send_error_json(e)
        except _Dropped:
            pass
        finally:
            st.leave(slot)
            if self.status in (0, -1):  # closed or stalled: no answer sent
                st.count(("by_status", str(self.status)),
                         ("by_route_status", "%s %d" % (req.route, self.status)))
            st.event("request", method=self.command, route=req.route, mailbox=req.mailbox,
                     status=self.status, code=self.code, jti=self.jti, fault=self.fired,
                     request_id=self.request_id)

    def steps(self, st, cfg, req, allowed):
        """1. faults before the body  2. the body (size limit)  3. faults  4. concurrency
        5. token  6. request rate  7. mailbox and access  8. the route  9. faults after."""
        rules = [r for r in st.faults() if self.matches(r)]
        self.fault_now(st, [r for r in rules if r["action"] == "close_before_body"])
        self.body = self.read_body(cfg)
        self.fault_now(st, [r for r in rules if not r.get("after") and
                            r["action"] != "close_before_body"])
        if not allowed:
            raise GraphError("concurrency", headers={"Retry-After": "1"})
        claims = self.check_token(st, cfg)
        limit, window = cfg.get("rate_limit", RATE_LIMIT)
        wait = st.rate_ok((claims.get("appid"), req.mailbox.lower()), int(limit), float(window))
        if wait is not None:
            raise GraphError("rate", headers={"Retry-After": str(wait)})
        mb_key, mb = self.check_mailbox(cfg, req, claims)
        answer = self.route(st, req, mb_key, mb)
        after = [r for r in rules if r.get("after")]
        if self.fault_now(st, after, answer=answer):
            return None
        return answer

    def matches(self, r):
        if r.get("route", "*") not in ("*", self.req.route):
            return False
        if "mailbox" in r and r["mailbox"].lower() != self.req.mailbox.lower():
            return False
        if "method" in r and r["method"].upper() != self.command:
            return False
        return True

    def fault_now(self, st, rules, answer=None):
        """Carries out the first rule that fires: raises GraphError / _Dropped, or returns
        True (an "after" rule that replaced the answer), or False (nothing fired, or a
        delay only)."""
        for r in rules:
            if not st.fire(r):
                continue
            self.fired = r["_index"]
            if r.get("delay"):
                time.sleep(float(r["delay"]))
            act = r["action"]
            if act == "delay":
                return False
            if act in ("close", "close_before_body"):
                self.drop()
            if act == "stall":
                self.stall()
            headers = {}
            if r.get("retry_after") is not None:
                headers["Retry-After"] = str(r["retry_after"])
            if "body" in r:  # a raw answer, e.g. an HTML error page from a proxy
                self.send(int(r.get("status", 500)), r["body"].encode(),
                          r.get("content_type", "text/html"), headers)
                return True
            status = int(r.get("status", 503))
            defaults = {429: ERRORS["rate"], 413: ERRORS["too_large"]}
            base = defaults.get(status, ERRORS["fault"])
            raise GraphError("fault", headers=headers, status=status,
                             code=r.get("code", base[1]), message=r.get("message", base[2]))
        return False

    def drop(self):
        self.close_connection = True
        self.status = 0
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped()

    def stall(self):
        """Never answers: reads until the client gives up (closes)."""
        self.status = -1
        self.close_connection = True
        try:
            self.request.settimeout(None)
            while self.request.recv(65536):
                pass
        except (OSError, ssl.SSLError):
            pass
        raise _Dropped()

    def read_body(self, cfg):
        if self.command in ("GET", "DELETE") and "Content-Length" not in self.headers:
            return b""
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise GraphError("length_required")
        n = int(length)
        limit = int(cfg.get("max_request_bytes", MAX_REQUEST_BYTES))
        if n > limit:
            # read (and drop) what the client sends, so that it sees the answer
            left = min(n, 64 * 1024 * 1024)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
            self.close_connection = True
            raise GraphError("too_large", code=cfg.get("too_large_code"))
        data = self.rfile.read(n)
        if len(data) != n:
            self.drop()
        return data

    def check_token(self, st, cfg):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise GraphError("no_token", headers=self.www_authenticate())
        token = auth[7:].strip()
        claims = fake_tokens.verify(st.key, token)
        if claims is None:
            raise GraphError("expired" if signed_but_expired(st.key, token) else "bad_token",
                             headers=self.www_authenticate())
        self.jti = claims.get("jti", "")
        st.saw_token(self.jti)
        jtis, before = st.revoked()
        if self.jti in jtis or claims.get("iat", 0) < before:
            raise GraphError("revoked", headers=self.www_authenticate())
        tenants = _as_list(cfg.get("tenant"))
        if tenants is not None and claims.get("tid") not in tenants:
            raise GraphError("issuer", headers=self.www_authenticate())
        words = claims.get("scp", "").split()
        check = cfg.get("check_scope", True)
        if claims.get("mbx"):  # delegated: Graph audience, and Mail.Send to send
            graph = [w for w in words if w == "Mail.Send" or w.startswith(GRAPH)]
            if check and not graph:
                raise GraphError("audience", headers=self.www_authenticate())
            claims["_mail_send"] = not check or any(
                w in ("Mail.Send", GRAPH + "Mail.Send") for w in graph)
        elif check and words != [GRAPH + ".default"]:
            raise GraphError("audience", headers=self.www_authenticate())
        return claims

    @staticmethod
    def www_authenticate():
        return {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.'
                'microsoftonline.com/common/oauth2/authorize", '
                'client_id="00000003-0000-0000-c000-000000000000"'}

    def check_mailbox(self, cfg, req, claims):
        """(config key, config) of the mailbox, or GraphError 404 / 403."""
        mailboxes = cfg.get("mailboxes")
        key = None
        if mailboxes is not None:
            key = next((k for k in mailboxes if k.lower() == req.mailbox.lower()), None)
            if key is None:
                raise GraphError("invalid_user", mailbox=req.mailbox)
        mb = (mailboxes or {}).get(key, {}) if key else {}
        if mb.get("on_premises"):
            raise GraphError("on_premises")
        if claims.get("mbx"):  # the signed-in user's mailbox, or one it is a delegate of
            delegates = [d.lower() for d in mb.get("delegates", [])]
            mbx = claims["mbx"].lower()
            if (mbx != req.mailbox.lower() and mbx not in delegates) or \
                    not claims["_mail_send"]:
                raise GraphError("access_denied")
        else:
            apps = _as_list(mb.get("apps", cfg.get("apps")))
            if apps is not None and claims.get("appid") not in apps:
                raise GraphError("access_denied")
        return key or req.mailbox, mb

    # --- routes ------------------------------------------------------------------------
    def route(self, st, req, mailbox, mb):
        if req.route == "other":
            if req.bad_segment is not None:
                raise GraphError("segment", segment=req.bad_segment)
            raise GraphError("method", method=self.command)
        if req.route in ("sendMail", "createMessage", "sendDraft") and mb.get("quota_exceeded"):
            raise GraphError("quota", status=int(self.cfg.get("quota_status", 403)))
        return getattr(self, "r_" + req.route)(st, req, mailbox, mb)

    def message_body(self, mailbox):
        """(mime bytes, json message or None) of a sendMail / create request body."""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "text/plain":
            text = self.body.translate(None, b" \t\r\n")  # line breaks are fine
            try:
                if len(text) % 4:
                    raise ValueError("length not a multiple of 4")
                mime = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise GraphError("bad_base64")
            if not mime:
                raise GraphError("bad_base64")
            return mime, None
        if ctype == "application/json":
            try:
                doc = json.loads(self.body)
                if not isinstance(doc, dict):
                    raise ValueError("not an object")
            except ValueError:
                raise GraphError("bad_json")
            m = doc.get("message", doc) if self.req.route == "sendMail" else doc
            if not isinstance(m, dict):
                raise GraphError("bad_json")
            return mime_from_json(mailbox, m), m
        raise GraphError("media_type", ctype=ctype)

    def check_recipients(self, lists):
        every = [a for lst in lists for a in lst]
        if not every:
            raise GraphError("no_recipients")
        for a in every:
            if "@" not in a or a.startswith("@") or a.endswith("@"):
                raise GraphError("bad_recipient", address=a)

    def check_send_as(self, mailbox, mb, froms):
        for a in froms:
            if not _may_send_as(mailbox, mb.get("send_as", []), a):
                raise GraphError("send_as")

    @staticmethod
    def unique(lists):
        """Each address once (Exchange resolves and de-duplicates recipients)."""
        seen, out = set(), []
        for lst in lists:
            for a in lst:
                if a.lower() not in seen:
                    seen.add(a.lower())
                    out.append(a)
        return out

    def r_sendMail(self, st, req, mailbox, mb):
        mime, as_json = self.message_body(mailbox)
        msg = parse_headers(mime)
        to, cc, bcc = (addresses(msg, h) for h in ("To", "Cc", "Bcc"))
        self.check_recipients([to, cc, bcc])
        self.check_send_as(mailbox, mb, addresses(msg, "From"))
        copy = recipient_copy(mime)
        rcpts = self.unique([to, cc, bcc])
        st.deliver({"method": "sendMail" if as_json is None else "sendMail-json",
                    "mailbox": mailbox, "to": to, "cc": cc, "bcc": bcc, "recipients": rcpts,
                    "from": addresses(msg, "From"), "request_id": self.request_id,
                    "save_to_sent_items": True}, mime, {a: copy for a in rcpts})
        return 202, b"", None, {}

    def r_createMessage(self, st, req, mailbox, mb):
        mime, _ = self.message_body(mailbox)
        d = Draft(mailbox, mime)
        st.add_draft(d)
        return self.json_answer(201, d.resource(), {"Location": "https://graph.microsoft.com/"
                                                    "v1.0/users('%s')/messages('%s')"
                                                    % (mailbox, d.id)})

    def draft(self, st, req):
        d = st.get_draft(req.mailbox, req.message_id)
        if d is None:
            raise GraphError("not_found")
        return d

    def r_getMessage(self, st, req, mailbox, mb):
        return self.json_answer(200, self.draft(st, req).resource())

    def r_updateMessage(self, st, req, mailbox, mb):
        d = self.draft(st, req)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise GraphError("media_type", ctype=ctype)
        try:
            doc = json.loads(self.body)
            if not isinstance(doc, dict):
                raise ValueError
            lists = {}
            for key in ("toRecipients", "ccRecipients", "bccRecipients"):
                if key in doc:
                    lists[key] = [str(r["emailAddress"]["address"]) for r in doc[key]]
            frm = doc.get("from")
            frm = [str(frm["emailAddress"]["address"])] if frm else None
        except (ValueError, KeyError, TypeError):
            raise GraphError("bad_json")
        with st.lock:
            d.to = lists.get("toRecipients", d.to)
            d.cc = lists.get("ccRecipients", d.cc)
            d.bcc = lists.get("bccRecipients", d.bcc)
            if "subject" in doc:
                d.subject = str(doc["subject"])
            if frm:
                d.froms = frm
            d.modified = _now_iso() + ".%06dZ" % (time.time() % 1 * 1e6)
        return self.json_answer(200, d.resource())

    def r_deleteMessage(self, st, req, mailbox, mb):
        if st.pop_draft(req.mailbox, req.message_id) is None:
            raise GraphError("not_found")
        return 204, b"", None, {}

    def r_sendDraft(self, st, req, mailbox, mb):
        d = self.draft(st, req)
        self.check_recipients([d.to, d.cc, d.bcc])
        self.check_send_as(mailbox, mb, d.froms)
        if st.pop_draft(req.mailbox, req.message_id) is None:  # sent meanwhile
            raise GraphError("not_found")
        copy = recipient_copy(d.mime, d.to, d.cc)
        rcpts = self.unique([d.to, d.cc, d.bcc])
        st.deliver({"method": "draft", "mailbox": mailbox, "draft_id": d.id, "to": d.to,
                    "cc": d.cc, "bcc": d.bcc, "recipients": rcpts, "from": d.froms,
                    "request_id": self.request_id}, d.mime, {a: copy for a in rcpts})
        return 202, b"", None, {}

    # --- answers -------------------------------------------------------------------------
    @staticmethod
    def json_answer(status, obj, headers=None):
        return status, json.dumps(obj).encode(), "application/json", headers or {}

    def send_error_json(self, e):
        self.code = e.code
        inner = {"date": _now_iso(), "request-id": self.request_id,
                 "client-request-id": self.headers.get("client-request-id", self.request_id)}
        body = {"error": {"code": e.code, "message": e.message, "innerError": inner}}
        self.send(e.status, json.dumps(body).encode(), "application/json", e.headers)

    def send(self, status, data, ctype=None, headers=None):
        st = self.server.state
        self.status = status
        st.count(("by_status", str(status)),
                 ("by_route_status", "%s %d" % (self.req.route, status)))
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", self.request_id)
        self.send_header("client-request-id",
                         self.headers.get("client-request-id", self.request_id))
        self.send_header("Strict-Transport-Security", "max-age=31536000")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class _Dropped(Exception):
    """The fake closed or stalled the connection on purpose: no answer."""


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, state, ctx, idle_timeout):
        self.state = state
        self.ctx = ctx
        self.idle_timeout = idle_timeout
        super().__init__(addr, Handler)

    def get_request(self):
        conn, addr = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        self.state.event("internal_error", error=repr(sys.exc_info()[1]))


def serve(args):
    os.makedirs(args.state, exist_ok=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(args.certs, "server.crt"),
                        os.path.join(args.certs, "server.key"))
    st = State(args.state, args.certs, args.seed)
    server = Server((args.host, args.port), st, ctx, args.idle_timeout)
    port = server.server_address[1]
    with open(os.path.join(args.state, "port"), "w") as f:
        f.write("%d\n" % port)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("READY %d" % port, flush=True)
    server.serve_forever(poll_interval=0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--state", required=True)
    s.add_argument("--certs", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--idle-timeout", type=float, default=120.0)
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
            print("fake_graph: %s" % e, file=sys.stderr)
            sys.exit(2)
    else:
        import fake_o365  # same revocation files and rules
        fake_o365.revoke(args)


if __name__ == "__main__":
    main()
