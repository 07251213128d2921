"""harness: starts the fakes for transport tests and reads what they recorded.

Contract: Env() makes a temporary directory (under $TMPDIR or /tmp) with a copy
of a test CA (tests/fakes/make_test_ca.sh, run once per process) and state
dirs for the fakes; start_o365() / start_entra() launch the fakes on free
loopback ports and wait for "READY <port>"; set_faults() / set_entra_faults()
and set_o365_config() / set_entra_config() write their fault and config files;
close() stops them (SIGTERM, by pid) and removes the directory unless
KEEP_TEST_DIRS=1. Not thread-safe (one Env per test).
"""
import base64
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.normpath(os.path.join(HERE, "..", "fakes"))
sys.path.insert(0, FAKES)
import fake_tokens  # noqa: E402

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
MAILBOX = "noreply@contoso.com"
APP_SCOPE = "https://outlook.office365.com/.default"


def start_process(argv, log_path, timeout=15.0, env=None):
    """Starts argv, waits for "READY <port>" on its stdout; returns (Popen, port)."""
    with open(log_path, "ab") as log:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env)
    deadline = time.time() + timeout
    line = b""
    while time.time() < deadline:
        line = p.stdout.readline()
        if line.startswith(b"READY "):
            return p, int(line.split()[1])
        if not line and p.poll() is not None:
            break
    p.kill()
    raise RuntimeError("%s did not become ready (%r); see %s" % (argv[1], line, log_path))


_CA_TEMPLATE = None


def _test_ca():
    """The test CA and certificates, made once per process (make_test_ca.sh takes
    seconds) in a directory removed at exit; every Env gets its own copy."""
    global _CA_TEMPLATE
    if _CA_TEMPLATE is None:
        import atexit
        top = tempfile.mkdtemp(prefix="o365relay-ca-")
        atexit.register(shutil.rmtree, top, True)
        subprocess.run(["sh", os.path.join(FAKES, "make_test_ca.sh"), os.path.join(top, "certs")],
                       check=True)
        _CA_TEMPLATE = os.path.join(top, "certs")
    return _CA_TEMPLATE


class Env:
    def __init__(self, name="t"):
        self.dir = tempfile.mkdtemp(prefix="o365relay-%s-" % name)
        self.certs = os.path.join(self.dir, "certs")
        shutil.copytree(_test_ca(), self.certs)
        self.o365_state = os.path.join(self.dir, "o365")
        os.makedirs(self.o365_state)
        self.entra_state = os.path.join(self.dir, "entra")
        os.makedirs(self.entra_state)
        self.key = fake_tokens.load_key(os.path.join(self.certs, "entra-signing.key"))
        self.procs = []
        self.o365_port = None
        self.entra_port = None
        self.set_o365_config({})

    # --- fake Office 365 --------------------------------------------------------
    def set_o365_config(self, extra, mailboxes=None):
        cfg = {"tenant": TENANT, "apps": [CLIENT_ID],
               "mailboxes": mailboxes if mailboxes is not None else {
                   MAILBOX: {"send_as": ["@apps.contoso.com"]},
                   "other@contoso.com": {"send_as": []}}}
        cfg.update(extra)
        self._write(os.path.join(self.o365_state, "config.json"), cfg)

    def set_faults(self, rules):
        self._write(os.path.join(self.o365_state, "faults.json"), {"faults": rules})

    def start_o365(self, *extra):
        p, self.o365_port = start_process(
            [sys.executable, os.path.join(FAKES, "fake_o365.py"), "serve", "--state",
             self.o365_state, "--certs", self.certs, "--seed", "1", *extra],
            os.path.join(self.dir, "fake_o365.stderr"))
        self.procs.append(p)
        return self.o365_port

    def stats(self):
        with open(os.path.join(self.o365_state, "stats.json")) as f:
            return json.load(f)

    def events(self, kind=None):
        out = []
        with open(os.path.join(self.o365_state, "events.jsonl")) as f:
            for line in f:
                e = json.loads(line)
                if kind is None or e["event"] == kind:
                    out.append(e)
        return out

    def messages(self):
        """[(envelope dict, bytes)] of every message the fake accepted, in order."""
        out = []
        for j in sorted(glob.glob(os.path.join(self.o365_state, "mailbox", "*.json"))):
            with open(j) as f:
                env = json.load(f)
            with open(j[:-5] + ".eml", "rb") as f:
                out.append((env, f.read()))
        return out

    def revoke(self, *args):
        subprocess.run([sys.executable, os.path.join(FAKES, "fake_o365.py"), "revoke",
                        "--state", self.o365_state, *args], check=True)

    def token(self, lifetime=3600, tenant=TENANT, client_id=CLIENT_ID, scope=APP_SCOPE,
              mailbox=""):
        return fake_tokens.issue(self.key, tenant, client_id, scope, lifetime, mailbox)

    # --- fake Entra ---------------------------------------------------------------
    ENTRA_SECRET = "bench-secret-~.value"

    def set_entra_config(self, extra=None):
        """Writes the fake Entra's config.json: the defaults updated with `extra`
        (re-read by the fake on every request)."""
        cfg = {"tenants": [TENANT],
               "signing_key": os.path.join(self.certs, "entra-signing.key"),
               "app_scope": APP_SCOPE,
               "clients": {CLIENT_ID: {"certificate": os.path.join(self.certs, "app.crt"),
                                       "secret": self.ENTRA_SECRET}}}
        cfg.update(extra or {})
        self._write(os.path.join(self.entra_state, "config.json"), cfg)

    def set_entra_faults(self, rules):
        """The fake Entra's faults.json (kinds slow, close, aadsts, 429, 500, malformed)."""
        self._write(os.path.join(self.entra_state, "faults.json"), {"faults": rules})

    def start_entra(self, *extra):
        self.set_entra_config()
        p, self.entra_port = start_process(
            [sys.executable, os.path.join(FAKES, "fake_entra.py"), "--state", self.entra_state,
             "--cert", os.path.join(self.certs, "server.crt"),
             "--key", os.path.join(self.certs, "server.key"), *extra],
            os.path.join(self.dir, "fake_entra.stderr"))
        self.procs.append(p)
        return self.entra_port

    def entra_settings(self):
        """The [entra] section of an o365relay.conf for the fake Entra (certificate credential)."""
        return {"authority": "https://127.0.0.1:%d" % self.entra_port, "tenant": TENANT,
                "client_id": CLIENT_ID,
                "certificate_file": os.path.join(self.certs, "app.crt"),
                "private_key_file": os.path.join(self.certs, "app.key"),
                "ca_file": os.path.join(self.certs, "ca.crt"), "http_timeout": 10}

    def entra_stats(self):
        try:
            with open(os.path.join(self.entra_state, "stats.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def entra_token_requests(self):
        """Token requests (client credentials) the fake Entra has answered so far."""
        return self.entra_stats().get("by_grant", {}).get("client_credentials", 0)

    def issued_tokens(self):
        """Every access token the fake Entra issued (test material)."""
        out = []
        try:
            with open(os.path.join(self.entra_state, "secrets_seen.jsonl")) as f:
                for line in f:
                    rec = json.loads(line)
                    if rec["kind"] == "access_token":
                        out.append(rec["value"])
        except FileNotFoundError:
            pass
        return out

    def fetch_token(self):
        """One access token from the fake Entra (client secret grant), as msmtp's
        passwordeval helper would get it."""
        import urllib.parse
        import urllib.request
        body = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": self.ENTRA_SECRET, "scope": APP_SCOPE},
            quote_via=urllib.parse.quote).encode()
        req = urllib.request.Request(
            "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (self.entra_port, TENANT), data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, context=self.client_ctx(), timeout=10) as r:
            return json.load(r)["access_token"]

    # --- misc -----------------------------------------------------------------------
    @staticmethod
    def _write(path, obj):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)

    def client_ctx(self, ca="ca.crt"):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, ca))
        return ctx

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p.stdout:
                p.stdout.close()
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


class RawClient:
    """A minimal SMTP client that sends exactly the bytes it is given."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """Reads one (possibly multi-line) reply: (code, [texts])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionError("closed; got %r" % self.buf)
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            line = line.decode()
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def starttls(self, ctx, server_hostname="localhost"):
        code, _ = self.cmd("STARTTLS")
        assert code == 220, code
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    def xoauth2(self, user, token, inline=False):
        blob = base64.b64encode(("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())
        if inline:
            return self.cmd("AUTH XOAUTH2 " + blob.decode())
        code, text = self.cmd("AUTH XOAUTH2")
        if code != 334:
            return code, text
        return self.cmd(blob.decode())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --- what the transport tests share (test_transport.py, test_graph.py) ---------
TEMPFAIL = 75
PERMANENT = {65, 67, 69}
SIMPLE = b"From: noreply@contoso.com\nTo: bob@example.org\nSubject: test\n\nHello.\n"


def normalized(msg: bytes) -> bytes:
    """What the fake must receive for stdin MSG (docs/design.md section 4, precise rules)."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", msg)
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


class Result:
    def __init__(self, argv, proc, elapsed, conf=None):
        self.argv = argv
        self.conf = conf
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.elapsed = elapsed
        self.line = proc.stdout.decode("utf-8", "replace").rstrip("\n")

    @property
    def dsn(self):
        return self.line.split(" ", 1)[0]

    def __repr__(self):
        return "rc=%s line=%r stderr=%r (%.2fs)" % (self.rc, self.line, self.err[-500:],
                                                    self.elapsed)
