#!/usr/bin/env python3
"""fake_entra.py: a faithful stand-in for the Entra ID v2.0 token and devicecode
endpoints, for tests. Python 3 standard library only; `openssl` CLI for the
certificate-assertion signature check.

    fake_entra.py --state DIR --cert server.crt --key server.key [--host 127.0.0.1] [--port 0]

Serves HTTPS on HOST:PORT (port 0: a free one) and prints "READY <port>" on
stdout once listening. SIGTERM/SIGINT stop it.

  POST /{tenant}/oauth2/v2.0/token       grant_type = client_credentials
                                         (client_secret or jwt-bearer client_assertion),
                                         refresh_token (rotating),
                                         urn:ietf:params:oauth:grant-type:device_code
  POST /{tenant}/oauth2/v2.0/devicecode

Files in the state DIR (see tests/fakes/README.md, section "fake Entra"):
  config.json        tenants, clients and behaviour; re-read on every request
  faults.json        fault injection; re-read on every request
  stats.json         request counters, written atomically after every request
  refresh_tokens.json  refresh tokens issued/rotated (the fake's memory)
  secrets_seen.jsonl every secret value received or issued, one JSON object a
                     line, so that tests can check none of them reached a log
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_tokens  # noqa: E402

APP_SCOPE = "https://outlook.office365.com/.default"
DELEGATED_SCOPE = "https://outlook.office.com/SMTP.Send"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VERIFICATION_URI = "https://microsoft.com/devicelogin"
UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
HEX = set(b"0123456789abcdefABCDEF")

# AADSTS code -> (HTTP status, error, description template). {client}, {tenant},
# {scope} are filled in. Texts follow Microsoft's own where known.
AADSTS = {
    7000215: (401, "invalid_client",
              "Invalid client secret provided. Ensure the secret being sent in the request is "
              "the client secret value, not the client secret ID, for a secret added to app "
              "'{client}'."),
    7000222: (401, "invalid_client",
              "The provided client secret keys for app '{client}' are expired. Visit the Azure "
              "portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
              "consider using certificate credentials for added security: "
              "https://aka.ms/certCreds."),
    7000218: (401, "invalid_client",
              "The request body must contain the following parameter: 'client_assertion' or "
              "'client_secret'."),
    700016: (400, "unauthorized_client",
             "Application with identifier '{client}' was not found in the directory "
             "'{tenant}'. This can happen if the application has not been installed by the "
             "administrator of the tenant or consented to by any user in the tenant. You may "
             "have sent your authentication request to the wrong tenant."),
    700027: (401, "invalid_client", "Client assertion failed signature validation."),
    700024: (401, "invalid_client", "Client assertion is not within its valid time range."),
    700021: (401, "invalid_client",
             "Client assertion application identifier doesn't match 'client_id' parameter."),
    50027: (401, "invalid_client", "JWT token is invalid or malformed."),
    70011: (400, "invalid_scope",
            "The provided value for the input parameter 'scope' is not valid. The scope "
            "{scope} is not valid."),
    500011: (400, "invalid_resource",
             "The resource principal named https://outlook.office365.com was not found in the "
             "tenant named {tenant}. This can happen if the application has not been installed "
             "by the administrator of the tenant or consented to by any user in the tenant."),
    65001: (400, "invalid_grant",
            "The user or administrator has not consented to use the application with ID "
            "'{client}'. Send an interactive authorization request for this user and resource."),
    70008: (400, "invalid_grant",
            "The provided authorization code or refresh token has expired due to inactivity. "
            "Send a new interactive authorization request for this user and resource."),
    700082: (400, "invalid_grant",
             "The refresh token has expired due to inactivity. The token was issued on "
             "2024-01-01T00:00:00Z and was inactive for 90.00:00:00."),
    50173: (400, "invalid_grant",
            "The provided grant has expired due to it being revoked, a fresh auth token is "
            "needed. The user might have changed or reset their password."),
    50076: (400, "invalid_grant",
            "Due to a configuration change made by your administrator, or because you moved to "
            "a new location, you must use multi-factor authentication to access "
            "'00000002-0000-0ff1-ce00-000000000000'."),
    53003: (400, "invalid_grant",
            "Access has been blocked by Conditional Access policies. The access policy does not "
            "allow token issuance."),
    50196: (400, "invalid_request",
            "The server terminated an operation because it encountered a client request loop. "
            "Please contact your app vendor."),
    90055: (429, "temporarily_unavailable",
            "TenantThrottlingError - There are too many incoming requests. This exception is "
            "thrown for blocked tenants."),
    90002: (400, "invalid_request",
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud."),
    900144: (400, "invalid_request",
             "The request body must contain the following parameter: '{param}'."),
    90023: (400, "invalid_request", "Unsupported request: {reason}"),
    9002313: (400, "invalid_grant", "Invalid request. Request is malformed or invalid."),
    70016: (400, "authorization_pending",
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling."),
    70020: (400, "expired_token",
            "The provided value for the input parameter 'device_code' is not valid. This "
            "device code has expired."),
    70000: (400, "invalid_grant", "The provided value for the input parameter is not valid."),
    90033: (500, "server_error", "A transient error has occurred. Please try again."),
}

# Device-flow answers that carry no standard AADSTS code in the fake.
DEVICE_ERRORS = {
    "authorization_pending": (70016, None),
    "slow_down": (None, "The client is polling too fast. Slow down."),
    "authorization_declined": (None, "The end user denied the authorization request."),
    "expired_token": (70020, None),
    "bad_verification_code": (None, "The device_code sent to the /token endpoint was not "
                                    "recognized."),
}


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64url(s):
    if not s or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    for c in s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def as_list(v):
    """A config value that is one string or a list of strings (e.g. scopes)."""
    return [v] if isinstance(v, str) else list(v)


def utcnow_text():
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())


def atomic_write(path, data):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FormError(Exception):
    pass


def parse_form(body):
    """Strict application/x-www-form-urlencoded parser: every byte outside the
    unreserved set must be %XX (a '+' means a space, as HTML forms say), and the
    decoded values must be UTF-8. Duplicate names are refused."""
    fields = {}
    if not body:
        return fields
    for piece in body.split(b"&"):
        if piece.count(b"=") != 1:
            raise FormError("field %r is not name=value" % piece[:40].decode("latin-1"))
        name, value = piece.split(b"=")
        out = []
        for part in (name, value):
            dec = bytearray()
            i = 0
            while i < len(part):
                c = part[i]
                if c == ord("%"):
                    h = part[i + 1:i + 3]
                    if len(h) != 2 or not all(x in HEX for x in h):
                        raise FormError("bad %-escape")
                    dec.append(int(h, 16))
                    i += 3
                elif c == ord("+"):
                    dec.append(0x20)
                    i += 1
                elif c in UNRESERVED:
                    dec.append(c)
                    i += 1
                else:
                    raise FormError("character %r is not URL-encoded" % chr(c))
            try:
                out.append(dec.decode("utf-8"))
            except UnicodeDecodeError:
                raise FormError("a value is not UTF-8 after decoding")
        if out[0] in fields:
            raise FormError("duplicate parameter '%s'" % out[0])
        fields[out[0]] = out[1]
    return fields


class OAuthFailure(Exception):
    def __init__(self, code=None, error=None, status=None, description=None, **fmt):
        super().__init__(error)
        self.code = code
        base = AADSTS.get(code, (400, "invalid_request", "")) if code else None
        self.status = status or (base[0] if base else 400)
        self.error = error or (base[1] if base else "invalid_request")
        text = description if description is not None else (base[2] if base else "")
        try:
            text = text.format(**fmt)
        except (KeyError, IndexError):
            pass
        self.description = text


class State:
    """Everything the fake remembers, guarded by one lock."""

    def __init__(self, state_dir):
        self.dir = state_dir
        self.lock = threading.Lock()
        self.fault_uses = {}
        self.device_codes = {}
        self.jtis = set()
        self.pubkeys = {}
        self.stats = {"total": 0, "by_endpoint": {}, "by_grant": {}, "by_status": {},
                      "faults": {}, "issued_access_tokens": 0, "issued_refresh_tokens": 0}
        rt_path = os.path.join(state_dir, "refresh_tokens.json")
        self.refresh_tokens = {}
        if os.path.exists(rt_path):
            with open(rt_path) as f:
                self.refresh_tokens = json.load(f)
        self.save_stats()

    def path(self, name):
        return os.path.join(self.dir, name)

    def read_json(self, name, default):
        try:
            with open(self.path(name)) as f:
                text = f.read()
        except FileNotFoundError:
            return default
        if not text.strip():
            return default
        return json.loads(text)

    def config(self):
        c = self.read_json("config.json", {})
        c.setdefault("tenants", ["contoso.onmicrosoft.com"])
        c.setdefault("token_lifetime", 3599)
        c.setdefault("expires_in_as_string", False)
        c.setdefault("app_scope", APP_SCOPE)
        c.setdefault("delegated_scope", DELEGATED_SCOPE)
        c.setdefault("clients", {})
        c.setdefault("device_code", {})
        c.setdefault("refresh_tokens", {})
        c.setdefault("audiences", [])
        c.setdefault("clock_skew", 300)
        return c

    def faults(self):
        f = self.read_json("faults.json", [])
        if isinstance(f, dict):
            f = f.get("faults", [])
        return f

    def save_stats(self):
        atomic_write(self.path("stats.json"), json.dumps(self.stats, indent=1, sort_keys=True))

    def save_refresh_tokens(self):
        atomic_write(self.path("refresh_tokens.json"), json.dumps(self.refresh_tokens, indent=1))

    def seen(self, kind, value):
        if not value:
            return
        with open(self.path("secrets_seen.jsonl"), "a") as f:
            f.write(json.dumps({"kind": kind, "value": value}) + "\n")

    def count(self, key, name):
        d = self.stats[key]
        d[name] = d.get(name, 0) + 1

    def take_fault(self, endpoint, grant, client_id):
        """The first fault that matches and still has uses left, consumed."""
        for fault in self.faults():
            if not isinstance(fault, dict):
                continue
            if fault.get("endpoint") not in (None, endpoint):
                continue
            if fault.get("grant") not in (None, grant):
                continue
            if fault.get("client_id") not in (None, client_id):
                continue
            key = json.dumps(fault, sort_keys=True)
            used = self.fault_uses.get(key, 0)
            count = fault.get("count")
            if count is not None and used >= count:
                continue
            self.fault_uses[key] = used + 1
            self.count("faults", str(fault.get("kind")))
            return fault
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-entra"
    sys_version = ""

    def setup(self):
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as e:
            log("TLS handshake failed: %s" % e)
            self.handshake_ok = False
        else:
            self.handshake_ok = True
        super().setup()

    def handle(self):
        if self.handshake_ok:
            try:
                super().handle()
            except (ConnectionError, ssl.SSLError, socket.timeout) as e:
                log("connection error: %s" % e)

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.send_json(405, {"error": "invalid_request",
                             "error_description": "AADSTS900561: The endpoint only accepts "
                                                  "POST requests. Received a GET request."})

    def do_POST(self):
        st = self.server.state
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > 65536:
            self.send_json(411, {"error": "invalid_request",
                                 "error_description": "Content-Length required (max 64 KB)"})
            return
        body = self.rfile.read(int(length))
        self.answered = False
        parts = self.path.split("?")[0].strip("/").split("/")
        endpoint = None
        if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"] and parts[3] in ("token",
                                                                                "devicecode"):
            endpoint = parts[3]
        with st.lock:
            st.stats["total"] += 1
            st.count("by_endpoint", endpoint or "other")
        grant, client_id, status = None, None, 0
        try:
            if endpoint is None:
                self.send_json(404, {"error": "invalid_request",
                                     "error_description": "no such endpoint: " + self.path})
                status = 404
                return
            tenant = parts[0]
            try:
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype != "application/x-www-form-urlencoded":
                    raise FormError("Content-Type must be application/x-www-form-urlencoded")
                form = parse_form(body)
            except FormError as e:
                status = self.send_error_json(OAuthFailure(90023, reason=str(e)))
                return
            grant = form.get("grant_type") if endpoint == "token" else "devicecode"
            client_id = form.get("client_id")
            with st.lock:
                st.count("by_grant", str(grant))
                fault = st.take_fault(endpoint, grant, client_id)
            if fault is not None:
                status = self.apply_fault(fault, tenant, client_id)
                if status is not None:
                    return
            with st.lock:
                cfg = st.config()
                try:
                    if tenant not in cfg["tenants"]:
                        raise OAuthFailure(90002, tenant=tenant)
                    if endpoint == "devicecode":
                        answer = self.devicecode(st, cfg, tenant, form)
                    else:
                        answer = self.token(st, cfg, tenant, form)
                except OAuthFailure as e:
                    answer = e
            if isinstance(answer, OAuthFailure):
                status = self.send_error_json(answer)
            else:
                status = 200
                self.send_json(200, answer)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout) as e:
            log("client went away: %s" % e)
            status = -1
        finally:
            if not self.answered:
                with st.lock:
                    st.count("by_status", str(status))
                    st.save_stats()
            log("POST %s grant=%s client=%s -> %s" % (self.path, grant, client_id, status))

    # ---- faults -------------------------------------------------------------

    def apply_fault(self, fault, tenant, client_id):
        """Returns the status sent, or None to go on with normal processing."""
        kind = str(fault.get("kind"))
        if kind == "slow":
            time.sleep(float(fault.get("delay", 5)))
            return None
        if kind == "close":
            self.close_connection = True
            try:
                self.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return 0
        if kind == "aadsts":
            code = int(fault.get("code", 7000215))
            f = OAuthFailure(code, error=fault.get("error"), status=fault.get("status"),
                             description=fault.get("description"), client=client_id,
                             tenant=tenant, scope="", param="", reason="")
            headers = {}
            if fault.get("retry_after") is not None:
                headers["Retry-After"] = str(fault["retry_after"])
            return self.send_error_json(f, headers)
        if kind == "429":
            headers = {}
            ra = fault.get("retry_after", 60)
            if ra is not None:
                headers["Retry-After"] = str(ra)
            if "body" in fault:
                self.send_raw(429, fault["body"], headers=headers)
                return 429
            return self.send_error_json(OAuthFailure(90055, status=429), headers)
        if kind == "500":
            code = int(fault.get("status", 500))
            if "body" in fault:
                self.send_raw(code, fault["body"],
                              content_type=fault.get("content_type", "text/html"))
            else:
                self.send_error_json(OAuthFailure(90033, status=code))
            return code
        if kind == "malformed":
            code = int(fault.get("status", 200))
            body = fault.get("body", '{"token_type":"Bearer","expires_in":3599,"access_tok')
            self.send_raw(code, body,
                          content_type=fault.get("content_type", "application/json; "
                                                                 "charset=utf-8"))
            return code
        log("unknown fault kind %r ignored" % kind)
        return None

    # ---- grants -------------------------------------------------------------

    def client(self, cfg, tenant, form, require_credential):
        """Authenticates the client; returns (client_id, client config)."""
        client_id = form.get("client_id")
        if not client_id:
            raise OAuthFailure(900144, param="client_id")
        c = cfg["clients"].get(client_id)
        if c is None:
            raise OAuthFailure(700016, client=client_id, tenant=tenant)
        st = self.server.state
        if "client_assertion" in form or "client_assertion_type" in form:
            st.seen("client_assertion", form.get("client_assertion"))
            self.check_assertion(cfg, tenant, client_id, c, form)
        elif "client_secret" in form:
            st.seen("client_secret", form["client_secret"])
            want = c.get("secret")
            if want is None or not hmac.compare_digest(want.encode(),
                                                       form["client_secret"].encode()):
                raise OAuthFailure(7000215, client=client_id)
            if c.get("secret_expired"):
                raise OAuthFailure(7000222, client=client_id)
        elif require_credential or not c.get("public"):
            raise OAuthFailure(7000218)
        return client_id, c

    def check_assertion(self, cfg, tenant, client_id, c, form):
        if form.get("client_assertion_type") != JWT_BEARER:
            raise OAuthFailure(50027, description="JWT token is invalid or malformed. [Reason - "
                               "client_assertion_type must be " + JWT_BEARER + "]")
        jwt = form.get("client_assertion") or ""

        def bad(why, code=50027):
            base = AADSTS[code][2]
            return OAuthFailure(code, description=base + " [Reason - " + why + "]")

        pieces = jwt.split(".")
        if len(pieces) != 3:
            raise bad("not three base64url parts")
        try:
            header = json.loads(unb64url(pieces[0]))
            claims = json.loads(unb64url(pieces[1]))
            sig = unb64url(pieces[2])
        except (ValueError, UnicodeDecodeError):
            raise bad("a part is not base64url JSON")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise bad("header or claims are not JSON objects")
        if header.get("typ") != "JWT":
            raise bad("typ is not JWT")
        cert = c.get("certificate")
        if not cert:
            raise OAuthFailure(700027, description="The certificate with identifier used to sign "
                               "the client assertion is not registered on application. [Reason - "
                               "The application has no certificate credential.]")
        der, pub = self.server.state_cert(cert)
        alg = header.get("alg")
        if alg == "PS256":
            thumb_name, want = "x5t#S256", b64url(hashlib.sha256(der).digest())
        elif alg == "RS256":
            thumb_name, want = "x5t", b64url(hashlib.sha1(der).digest())
        else:
            raise bad("alg %r is not PS256 or RS256" % alg)
        got = header.get(thumb_name)
        if got != want:
            raise OAuthFailure(700027, description="The certificate with identifier used to sign "
                               "the client assertion is not registered on application. [Reason - "
                               "The key was not found., Thumbprint of key used by client: '%s']"
                               % got)
        if not verify_signature(pub, (pieces[0] + "." + pieces[1]).encode(), sig, alg):
            raise OAuthFailure(700027)
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise OAuthFailure(700021)
        host = self.headers.get("Host", "")
        audiences = ["https://%s/%s/oauth2/v2.0/token" % (host, tenant)] + cfg["audiences"]
        if claims.get("aud") not in audiences:
            raise bad("aud %r is not the token endpoint %s" % (claims.get("aud"), audiences[0]))
        now = int(time.time())
        skew = int(cfg["clock_skew"])
        for k in ("exp", "nbf", "iat"):
            if not isinstance(claims.get(k), int):
                raise bad("claim %s is missing or not an integer" % k)
        if claims["exp"] <= now - skew or claims["nbf"] > now + skew or claims["exp"] > now + 3600:
            raise OAuthFailure(700024, description=AADSTS[700024][2] + " Current time: %d, "
                               "assertion valid from %d, expiry time of assertion %d."
                               % (now, claims["nbf"], claims["exp"]))
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise bad("jti is missing")
        st = self.server.state
        if jti in st.jtis:
            raise bad("jti %s was already used" % jti)
        st.jtis.add(jti)

    def token(self, st, cfg, tenant, form):
        grant = form.get("grant_type")
        if not grant:
            raise OAuthFailure(900144, param="grant_type")
        if grant == "client_credentials":
            client_id, _ = self.client(cfg, tenant, form, require_credential=True)
            scope = form.get("scope")
            if not scope:
                raise OAuthFailure(900144, param="scope")
            if scope not in as_list(cfg["app_scope"]):
                raise OAuthFailure(70011, scope=scope)
            return self.issue(st, cfg, tenant, client_id, scope, "", refresh=False)
        if grant == "refresh_token":
            client_id, _ = self.client(cfg, tenant, form, require_credential=False)
            rt = form.get("refresh_token")
            if not rt:
                raise OAuthFailure(900144, param="refresh_token")
            st.seen("refresh_token", rt)
            scope = form.get("scope") or as_list(cfg["delegated_scope"])[0] + " offline_access"
            self.check_delegated_scope(cfg, scope)
            known = dict(cfg["refresh_tokens"])
            known.update(st.refresh_tokens)
            entry = known.get(rt)
            if entry is None:
                raise OAuthFailure(9002313)
            if entry.get("client_id", client_id) != client_id:
                raise OAuthFailure(70000, description="The refresh token was issued to a "
                                   "different client.")
            if entry.get("status", "valid") != "valid":
                raise OAuthFailure(70008)
            rotate = "offline_access" in scope.split()
            if rotate:  # a new refresh token replaces this one
                st.refresh_tokens[rt] = dict(entry, status="rotated", rotated_at=int(time.time()))
            answer = self.issue(st, cfg, tenant, client_id, scope, entry.get("mailbox", ""),
                                refresh=rotate)
            st.save_refresh_tokens()
            return answer
        if grant == DEVICE_GRANT:
            client_id, _ = self.client(cfg, tenant, form, require_credential=False)
            dc = form.get("device_code")
            if not dc:
                raise OAuthFailure(900144, param="device_code")
            st.seen("device_code", dc)
            entry = st.device_codes.get(dc)
            if entry is None or entry["client_id"] != client_id:
                raise device_error("bad_verification_code")
            if time.time() > entry["created"] + entry["expires_in"]:
                raise device_error("expired_token")
            if entry["polls"]:
                raise device_error(entry["polls"].pop(0))
            outcome = entry["outcome"]
            if outcome == "approve":
                del st.device_codes[dc]
                return self.issue(st, cfg, tenant, client_id, entry["scope"], entry["mailbox"],
                                  refresh="offline_access" in entry["scope"].split())
            raise device_error({"decline": "authorization_declined", "expire": "expired_token",
                                "bad_code": "bad_verification_code"}.get(outcome, outcome))
        raise OAuthFailure(90023, error="unsupported_grant_type",
                           reason="grant_type %s is not supported" % grant)

    def check_delegated_scope(self, cfg, scope):
        words = scope.split()
        if not any(s in words for s in as_list(cfg["delegated_scope"])):
            raise OAuthFailure(70011, scope=scope)

    def devicecode(self, st, cfg, tenant, form):
        client_id, _ = self.client(cfg, tenant, form, require_credential=False)
        scope = form.get("scope")
        if not scope:
            raise OAuthFailure(900144, param="scope")
        self.check_delegated_scope(cfg, scope)
        dcfg = cfg["device_code"]
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        device_code = "DAQABAAEAAAD" + b64url(os.urandom(48))
        interval = int(dcfg.get("interval", 5))
        expires_in = int(dcfg.get("expires_in", 900))
        st.device_codes[device_code] = {
            "client_id": client_id, "scope": scope, "created": time.time(),
            "expires_in": expires_in, "polls": list(dcfg.get("polls", [])),
            "outcome": dcfg.get("outcome", "approve"),
            "mailbox": dcfg.get("mailbox", "user@contoso.com")}
        st.seen("device_code", device_code)
        return {"user_code": user_code, "device_code": device_code,
                "verification_uri": VERIFICATION_URI,
                "expires_in": str(expires_in) if dcfg.get("expires_in_as_string") else expires_in,
                "interval": interval,
                "message": "To sign in, use a web browser to open the page %s and enter the "
                           "code %s to authenticate." % (VERIFICATION_URI, user_code)}

    def issue(self, st, cfg, tenant, client_id, scope, mailbox, refresh):
        key = fake_tokens.load_key(cfg["signing_key"])
        lifetime = int(cfg["token_lifetime"])
        tok = fake_tokens.issue(key, tenant, client_id, scope, lifetime, mailbox)
        st.seen("access_token", tok["token"])
        st.stats["issued_access_tokens"] += 1
        exp = str(lifetime) if cfg["expires_in_as_string"] else lifetime
        answer = {"token_type": "Bearer"}
        if mailbox:
            answer["scope"] = " ".join(w for w in scope.split() if w != "offline_access")
        answer.update({"expires_in": exp, "ext_expires_in": exp, "access_token": tok["token"]})
        if refresh:
            rt = "0.AR" + b64url(os.urandom(48))
            st.refresh_tokens[rt] = {"client_id": client_id, "mailbox": mailbox, "scope": scope,
                                     "status": "valid", "issued_at": int(time.time())}
            st.save_refresh_tokens()
            st.seen("refresh_token", rt)
            st.stats["issued_refresh_tokens"] += 1
            answer["refresh_token"] = rt
        return answer

    # ---- answers ------------------------------------------------------------

    def send_error_json(self, f, headers=None):
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        ts = utcnow_text()
        desc = f.description
        codes = []
        if f.code:
            desc = "AADSTS%d: %s" % (f.code, desc)
            codes = [f.code]
        desc += "\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (trace, corr, ts)
        body = {"error": f.error, "error_description": desc, "error_codes": codes,
                "timestamp": ts, "trace_id": trace, "correlation_id": corr}
        if f.code:
            body["error_uri"] = "https://login.microsoftonline.com/error?code=%d" % f.code
        self.send_json(f.status, body, headers)
        return f.status

    def send_json(self, status, obj, headers=None):
        self.send_raw(status, json.dumps(obj), headers=headers)

    def send_raw(self, status, text, content_type="application/json; charset=utf-8",
                 headers=None):
        data = text.encode() if isinstance(text, str) else text
        # Counters reach stats.json before the client sees the answer, so a test
        # that reads them right after its request sees its own request counted.
        st = self.server.state
        with st.lock:
            st.count("by_status", str(status))
            st.save_stats()
        self.answered = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store, no-cache")
        self.send_header("Pragma", "no-cache")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def device_error(name):
    code, text = DEVICE_ERRORS.get(name, (None, "Device flow error."))
    return OAuthFailure(code, error=name, status=400, description=text)


def verify_signature(pub_pem_path, data, sig, alg):
    with tempfile.TemporaryDirectory(prefix="fake-entra-") as d:
        dp, sp = os.path.join(d, "data"), os.path.join(d, "sig")
        with open(dp, "wb") as f:
            f.write(data)
        with open(sp, "wb") as f:
            f.write(sig)
        cmd = ["openssl", "dgst", "-sha256", "-verify", pub_pem_path, "-signature", sp]
        if alg == "PS256":
            cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32",
                    "-sigopt", "rsa_mgf1_md:sha256"]
        cmd.append(dp)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return r.returncode == 0 and b"Verified OK" in r.stdout


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, ctx):
        self.state = state
        self.ctx = ctx
        self.certs = {}
        self.cert_lock = threading.Lock()
        super().__init__(addr, Handler)

    def get_request(self):
        conn, addr = self.socket.accept()
        return self.ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        log("error serving %s: %s" % (client_address, sys.exc_info()[1]))

    def state_cert(self, path):
        """(DER, path of a PEM public key) of a registered application certificate."""
        with self.cert_lock:
            mtime = os.stat(path).st_mtime
            hit = self.certs.get(path)
            if hit and hit[0] == mtime:
                return hit[1], hit[2]
            with open(path) as f:
                der = ssl.PEM_cert_to_DER_cert(f.read())
            pub = os.path.join(self.state.dir, ".pub-%s.pem" % hashlib.sha256(path.encode())
                               .hexdigest()[:16])
            r = subprocess.run(["openssl", "x509", "-in", path, "-pubkey", "-noout"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
            with open(pub, "wb") as f:
                f.write(r.stdout)
            self.certs[path] = (mtime, der, pub)
            return der, pub


def log(text):
    sys.stderr.write("fake_entra[%d]: %s\n" % (os.getpid(), text))
    sys.stderr.flush()


def main():
    ap = argparse.ArgumentParser(description="fake Entra ID token endpoint for tests")
    ap.add_argument("--state", required=True, help="state directory (config.json, faults.json)")
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server private key (PEM)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    os.makedirs(args.state, exist_ok=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    state = State(args.state)
    server = Server((args.host, args.port), state, ctx)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
