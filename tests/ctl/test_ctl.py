#!/usr/bin/env python3
"""End-to-end tests of the REAL o365relayctl against fake Entra and fake Office 365.

Usage: test_ctl.py /path/to/o365relayctl /path/to/o365relay-transport [unittest args]

Each test writes its own config and state dir (cold token cache) and runs the
binary as an administrator would. It checks exit statuses (ctl/ctl.hpp: 0 ok,
1 a check failed, 64 usage, 75 temporary, 78 config), what the output says,
what the fakes saw (tokens issued, AUTH without MAIL, messages delivered) and
that no token, refresh token, device code or secret the fakes handed out or
received ever appears in any output or log.
"""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "transport"))
import harness  # noqa: E402
from harness import MAILBOX  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import stack  # noqa: E402  (ensure_service_user: the user as the package makes it)
from stack import GraphEnv  # noqa: E402  (harness.Env + fake Graph, tests/fakes)

CTL = None
TRANSPORT = None
USER_MAILBOX = "user@contoso.com"   # the delegated account's mailbox
OK, FAILED, USAGE, TEMPFAIL, CONFIG = 0, 1, 64, 75, 78


class Run:
    def __init__(self, argv, p, elapsed):
        self.argv = argv
        self.rc = p.returncode
        self.out = p.stdout.decode("utf-8", "replace")
        self.err = p.stderr.decode("utf-8", "replace")
        self.elapsed = elapsed

    @property
    def text(self):
        return self.out + self.err

    def __repr__(self):
        return "%s: rc=%s (%.1fs)\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(self.argv[1:]), self.rc, self.elapsed, self.out, self.err)


class CtlTest(unittest.TestCase):
    """Fakes shared by the class; a fresh state dir and config per test."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.Env("ctl")
        cls.env.start_o365()
        cls.env.start_entra()
        with open(os.path.join(cls.env.entra_state, "config.json")) as f:
            cls.entra_base = json.load(f)
        cls.seq = 0
        cls.outputs = []   # every output of every run, checked for secrets at the end

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        type(self).seq += 1
        self.env.set_faults([])
        self.set_entra_faults([])
        self.set_entra_config({})
        self.env.set_o365_config({}, mailboxes={
            MAILBOX: {"send_as": ["@apps.contoso.com"]},
            USER_MAILBOX: {"send_as": []}})
        self.tdir = os.path.join(self.env.dir, "t%03d" % self.seq)
        os.makedirs(self.tdir)
        self.state_dir = os.path.join(self.tdir, "state")
        self.log = os.path.join(self.tdir, "relay.log")
        self.conf = self.write_config()

    def tearDown(self):
        self.assert_no_secret_anywhere()

    # --- fakes -----------------------------------------------------------------
    def set_entra_faults(self, faults):
        self.env._write(os.path.join(self.env.entra_state, "faults.json"), {"faults": faults})

    def set_entra_config(self, extra):
        cfg = json.loads(json.dumps(self.entra_base))
        cfg.update(extra)
        self.env._write(os.path.join(self.env.entra_state, "config.json"), cfg)

    def entra_grants(self, grant="client_credentials"):
        return self.env.entra_stats().get("by_grant", {}).get(grant, 0)

    def secrets_seen(self):
        out = set()
        try:
            with open(os.path.join(self.env.entra_state, "secrets_seen.jsonl")) as f:
                for line in f:
                    v = json.loads(line)["value"]
                    if isinstance(v, str) and len(v) >= 8:
                        out.add(v)
        except FileNotFoundError:
            pass
        out.add(harness.Env.ENTRA_SECRET)
        return out

    # --- config ------------------------------------------------------------------
    def write_config(self, relay=None, smtp=None, entra=None, account=None, extra=""):
        r = {"state_dir": self.state_dir, "log": "file:" + self.log, "log_level": "debug",
             "user": "root"}
        r.update(relay or {})
        s = {"host": "localhost", "port": self.env.o365_port, "helo_name": "relay.test",
             "ca_file": os.path.join(self.env.certs, "ca.crt"), "connect_timeout": 3,
             "command_timeout": 3, "data_timeout": 3, "deadline": 30}
        s.update(smtp or {})
        e = self.env.entra_settings()
        e.update(entra or {})
        a = {"mailbox": MAILBOX, "senders": "noreply@contoso.com, @apps.contoso.com"}
        a.update(account or {})

        def sect(name, d):
            return "[%s]\n" % name + "".join(
                "%s = %s\n" % kv for kv in d.items() if kv[1] is not None)
        text = (sect("relay", r) + sect("smtp", s) + sect("entra", e)
                + sect("account noreply", a) + extra)
        path = os.path.join(self.tdir, "o365relay.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    DELEGATED = ("[account user]\nmailbox = %s\nsenders = %s\nflow = delegated\n"
                 % (USER_MAILBOX, USER_MAILBOX))

    # --- running ---------------------------------------------------------------------
    def ctl(self, *args, conf=None, timeout=60, transport=True):
        argv = [CTL, "-c", conf or self.conf]
        if transport:
            argv += ["-T", TRANSPORT]
        argv += list(args)
        t0 = time.time()
        p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        r = Run(argv, p, time.time() - t0)
        type(self).outputs.append(r.text)
        if os.environ.get("CTL_TEST_VERBOSE") == "1":
            sys.stderr.write("\n$ o365relayctl %s\n%s%s[exit %d]\n"
                             % (" ".join(args), r.out, r.err, r.rc))
        return r

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def entry(self, account="noreply"):
        with open(os.path.join(self.state_dir, "tokens", account + ".json")) as f:
            return json.load(f)

    def assert_no_secret_anywhere(self):
        texts = list(type(self).outputs) + [self.log_text()]
        secrets = self.secrets_seen()
        for text in texts:
            for s in secrets:
                self.assertNotIn(s, text, "a token/secret reached the output or log")
            for cand in re.findall(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}", text):
                self.assertIsNone(harness.fake_tokens.verify(self.env.key, cand),
                                  "a valid access token reached the output or log")
            self.assertNotIn("Bearer ", text.replace("Bearer [redacted]", ""))
        type(self).outputs = []


class Help(CtlTest):
    def test_help_of_every_command_exits_0(self):
        missing = os.path.join(self.tdir, "no-such.conf")
        for args in (["--help"], ["-h"], ["help"], ["check", "--help"], ["token", "--help"],
                     ["token", "status", "--help"], ["token", "refresh", "--help"],
                     ["login", "--help"], ["send-test", "--help"], ["check", "-h"],
                     ["status", "--help"], ["metrics", "--help"]):
            r = self.ctl(*args, conf=missing)
            self.assertEqual(r.rc, OK, r)
            self.assertIn("usage: o365relayctl", r.out, r)
            self.assertEqual(r.err, "", r)

    def test_usage_errors_exit_64(self):
        for args in ([], ["frobnicate"], ["--bogus", "check"], ["token"], ["token", "list"],
                     ["token", "refresh"], ["login"], ["send-test", "noreply"],
                     ["check", "a", "b"], ["send-test", "-f", "noreply", "bob@example.org"],
                     ["status", "a", "b"], ["metrics", "noreply"]):
            r = self.ctl(*args)
            self.assertEqual(r.rc, USAGE, r)
            self.assertIn("usage: o365relayctl", r.err, r)
        r = self.ctl("send-test", "noreply", "not an address")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("'not an address' is not an address", r.err, r)

    def test_exit_statuses_documented(self):
        r = self.ctl("--help")
        for code in ("0 ok", "1 a check failed", "64 usage", "75 temporary", "78 configuration"):
            self.assertIn(code, r.out.replace("\n", " "), r)
        man = os.path.join(HERE, "..", "..", "docs", "man", "o365relayctl.8")
        with open(man) as f:
            text = f.read()
        for code in ("0", "1", "64", "75", "78"):
            self.assertRegex(text, r"\.TP\n\.B %s\n" % code)


class ConfigAndAccounts(CtlTest):
    def test_bad_config_exits_78_naming_file_and_line(self):
        bad = self.write_config(extra="[policy]\nmax_recipients = 10\nfrobnicate = yes\n")
        with open(bad) as f:
            line = f.read().splitlines().index("frobnicate = yes") + 1
        for args in (["check"], ["token", "status"], ["token", "refresh", "noreply"],
                     ["login", "noreply"], ["send-test", "noreply", "bob@example.org"]):
            r = self.ctl(*args, conf=bad)
            self.assertEqual(r.rc, CONFIG, r)
            self.assertIn("%s:%d" % (bad, line), r.err, r)
            self.assertIn("frobnicate", r.err, r)

    def test_missing_config_exits_78(self):
        r = self.ctl("check", conf=os.path.join(self.tdir, "absent.conf"))
        self.assertEqual(r.rc, CONFIG, r)
        self.assertIn("absent.conf", r.err, r)

    def test_no_accounts(self):
        conf = os.path.join(self.tdir, "empty.conf")
        with open(self.conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text[:text.index("[account noreply]")])
        # A file without an account is a configuration error for every command.
        for args in (["check"], ["token", "status"], ["token", "refresh", "noreply"]):
            r = self.ctl(*args, conf=conf)
            self.assertEqual(r.rc, CONFIG, r)
            self.assertIn("no [account NAME] section: o365relay relays nothing", r.err, r)

    def test_unknown_account_exits_64(self):
        before = self.entra_grants()
        for args in (["check", "nobody"], ["token", "status", "nobody"],
                     ["token", "refresh", "nobody"], ["login", "nobody"],
                     ["send-test", "nobody", "bob@example.org"]):
            r = self.ctl(*args)
            self.assertEqual(r.rc, USAGE, r)
            self.assertIn("no account named 'nobody'", r.err, r)
            self.assertIn("noreply", r.err, r)   # lists the accounts there are
        self.assertEqual(self.entra_grants(), before)
        self.assertEqual(self.env.messages(), [])


class Check(CtlTest):
    def test_check_passes_against_healthy_fakes(self):
        st0 = self.env.stats()
        grants0 = self.entra_grants()
        r = self.ctl("check")
        self.assertEqual(r.rc, OK, r)
        for step in ("config", "certificate", "private key", "token from Entra ID",
                     "STARTTLS", "AUTH XOAUTH2", "check passed"):
            self.assertIn(step, r.out, r)
        self.assertNotIn("FAIL", r.out, r)
        st = self.env.stats()
        self.assertEqual(self.entra_grants() - grants0, 1)
        self.assertEqual(st["auth_ok"] - st0["auth_ok"], 1)
        self.assertEqual(st["tls_handshakes"] - st0["tls_handshakes"], 1)
        self.assertEqual(st["mail_commands"] - st0["mail_commands"], 0)
        self.assertEqual(st["messages"] - st0["messages"], 0)
        self.assertIn("QUIT", [e["line"] for e in self.env.events("command")
                               if e.get("conn") == self.env.events("connect")[-1].get("conn")])
        # the token went to the cache: a second check asks Entra no more
        r = self.ctl("check", "noreply")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.entra_grants() - grants0, 1)

    def test_check_aadsts_code_and_hint(self):
        self.set_entra_faults([{"kind": "aadsts", "code": 7000215, "id": self.seq}])
        st0 = self.env.stats()
        r = self.ctl("check")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("AADSTS7000215", r.out, r)
        self.assertIn("client_secret_file must hold the secret's Value", r.out, r)
        self.assertIn("check FAILED", r.out, r)
        self.assertEqual(self.env.stats()["connections"], st0["connections"])

    def test_check_aadsts_ignores_backoff_of_earlier_failure(self):
        # A check just after a failed refresh still asks Entra: an administrator
        # who fixed something in the portal wants the live answer.
        self.set_entra_faults([{"kind": "aadsts", "code": 65001, "count": 1, "id": self.seq}])
        g0 = self.entra_grants()
        r = self.ctl("check")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("AADSTS65001", r.out, r)
        self.assertEqual(self.entra_grants() - g0, 1)
        r = self.ctl("check")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.entra_grants() - g0, 2)

    def test_check_smtp_auth_disabled(self):
        self.env.set_o365_config({}, mailboxes={MAILBOX: {"smtp_auth": False}})
        st0 = self.env.stats()
        r = self.ctl("check")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("5.7.139", r.out, r)
        self.assertIn("SmtpClientAuthentication", r.out, r)
        self.assertIn("Set-CASMailbox", r.out, r)
        self.assertIn("ok    token", r.out, r)
        self.assertEqual(self.env.stats()["mail_commands"], st0["mail_commands"])

    def test_check_smtp_auth_disabled_by_fault(self):
        self.env.set_faults([{"stage": "auth", "reply": "535 5.7.139 Authentication "
                              "unsuccessful, SmtpClientAuthentication is disabled for the "
                              "Tenant. Visit https://aka.ms/smtp_auth_disabled for more "
                              "information. [FAKE.prod.outlook.com]"}])
        r = self.ctl("check", "noreply")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("Set-CASMailbox", r.out, r)

    def test_check_token_refused_by_exchange(self):
        # The app is not allowed for the mailbox: 535 5.7.3; the fix names the
        # Exchange service principal / mailbox permission.
        self.env.set_o365_config({"apps": []}, mailboxes={MAILBOX: {"apps": []}})
        r = self.ctl("check")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("5.7.3", r.out, r)
        self.assertIn("Add-MailboxPermission", r.out, r)

    def test_check_untrusted_server_certificate(self):
        self.env.set_faults([{"stage": "tls", "action": "cert", "cert": "rogue"}])
        st0 = self.env.stats()
        r = self.ctl("check")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("certificate", r.out.split("ok    token", 1)[1], r)
        self.assertIn("ca_file", r.out, r)
        self.assertEqual(self.env.stats()["auth_attempts"], st0["auth_attempts"])

    def test_check_untrusted_entra_certificate(self):
        conf = self.write_config(entra={"ca_file": os.path.join(self.env.certs, "rogue-ca.crt")})
        r = self.ctl("check", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertRegex(r.out, r"FAIL +token: .*certificate", r)
        self.assertIn("fix: Entra ID's TLS certificate was not trusted", r.out, r)
        self.assertIn("[entra] ca_file", r.out, r)

    def test_check_revoked_cached_token_refreshes_once(self):
        g0 = self.entra_grants()
        self.assertEqual(self.ctl("check").rc, OK)
        self.env.revoke("--seen")
        st0 = self.env.stats()
        r = self.ctl("check")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("getting a new one", r.out, r)
        self.assertEqual(self.entra_grants() - g0, 2)
        st = self.env.stats()
        self.assertEqual(st["auth_failed"] - st0["auth_failed"], 1)
        self.assertEqual(st["auth_ok"] - st0["auth_ok"], 1)

    def test_check_notes_send_as_is_not_checked(self):
        r = self.ctl("check")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("note  Send As for @apps.contoso.com", r.out, r)
        self.assertIn("send-test -f SENDER noreply", r.out, r)
        conf = self.write_config(account={"senders": MAILBOX})
        r = self.ctl("check", conf=conf)
        self.assertEqual(r.rc, OK, r)
        self.assertNotIn("Send As", r.out, r)

    def test_check_entra_unreachable(self):
        conf = self.write_config(entra={"authority": "https://127.0.0.1:%d" % free_port()})
        r = self.ctl("check", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertRegex(r.out, r"FAIL +token: .*token request to 127.0.0.1", r)
        self.assertIn("fix: check DNS and that outbound HTTPS", r.out, r)

    def test_check_unreadable_private_key(self):
        conf = self.write_config(entra={"private_key_file": os.path.join(self.tdir, "gone.key")})
        g0 = self.entra_grants()
        r = self.ctl("check", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("gone.key", r.out, r)
        self.assertEqual(self.entra_grants(), g0)

    def test_check_loose_private_key_mode(self):
        key = os.path.join(self.tdir, "app.key")
        shutil.copy(os.path.join(self.env.certs, "app.key"), key)
        os.chmod(key, 0o644)
        conf = self.write_config(entra={"private_key_file": key})
        r = self.ctl("check", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("app.key", r.out, r)

    def test_check_fake_o365_down(self):
        port = free_port()
        conf = self.write_config(smtp={"port": port})
        r = self.ctl("check", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        fix = [l for l in r.out.splitlines() if "fix:" in l]
        self.assertTrue(fix, r)
        self.assertIn("port %d" % port, fix[0], r)  # the fix names the configured port


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Token(CtlTest):
    def test_status_before_and_after_refresh(self):
        r = self.ctl("token", "status")
        self.assertEqual(r.rc, FAILED, r)  # no usable token: monitoring must see it
        self.assertIn("account noreply", r.out, r)
        self.assertIn("none cached", r.out, r)
        g0 = self.entra_grants()
        t0 = int(time.time())
        r = self.ctl("token", "refresh", "noreply")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("new token obtained", r.out, r)
        self.assertEqual(self.entra_grants() - g0, 1)
        e = self.entry()
        self.assertTrue(e["access_token"])
        r = self.ctl("token", "status", "noreply")
        self.assertEqual(r.rc, OK, r)
        expiry = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(e["expires_at"]))
        self.assertIn("valid, expires " + expiry, r.out, r)
        self.assertIn(time.strftime("%Y-%m-%d", time.gmtime(t0)), r.out, r)
        self.assertRegex(r.out, r"obtained: +\d{4}-\d\d-\d\d", r)
        self.assertIn("last error: none", r.out, r)
        self.assertNotIn(e["access_token"], r.text)
        self.assertNotIn(e["access_token"][:16], r.text)

    def test_status_shows_last_error(self):
        self.set_entra_faults([{"kind": "aadsts", "code": 7000222, "id": self.seq}])
        r = self.ctl("token", "refresh", "noreply")
        self.assertEqual(r.rc, CONFIG, r)
        self.assertIn("AADSTS7000222", r.out, r)
        r = self.ctl("token", "status")
        self.assertEqual(r.rc, FAILED, r)  # the last refresh failed
        self.assertRegex(r.out, r"last error: \d{4}-.* configuration: .*AADSTS7000222", r)

    def test_refresh_ignores_backoff(self):
        self.set_entra_faults([{"kind": "500", "count": 1, "id": self.seq}])
        g0 = self.entra_grants()
        r = self.ctl("token", "refresh", "noreply")
        self.assertEqual(r.rc, TEMPFAIL, r)
        self.assertEqual(self.entra_grants() - g0, 1)
        e = self.entry()
        self.assertIsNotNone(e["last_error"])
        self.assertGreater(e.get("backoff_until", 0), time.time())
        # The transport, during the backoff, does not ask Entra ...
        res = subprocess.run([TRANSPORT, "-c", self.conf, "-f", MAILBOX, "-q", "Q1",
                              "-n", "noreply", "--", "bob@example.org"],
                             input=b"Subject: x\n\nx\n", capture_output=True, timeout=60)
        type(self).outputs.append(res.stdout.decode() + res.stderr.decode())
        self.assertEqual(res.returncode, TEMPFAIL, res)
        self.assertEqual(self.entra_grants() - g0, 1)
        # ... but an administrator's refresh does, at once.
        r = self.ctl("token", "refresh", "noreply")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.entra_grants() - g0, 2)
        e = self.entry()
        self.assertIsNone(e["last_error"])
        self.assertTrue(e["access_token"])

    def test_refresh_twice_asks_entra_twice(self):
        g0 = self.entra_grants()
        self.assertEqual(self.ctl("token", "refresh", "noreply").rc, OK)
        first = self.entry()["access_token"]
        self.assertEqual(self.ctl("token", "refresh", "noreply").rc, OK)
        self.assertEqual(self.entra_grants() - g0, 2)
        self.assertNotEqual(self.entry()["access_token"], first)


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$', line)
        assert m, "bad sample line: %r" % line
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(metrics, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in metrics:
        raise AssertionError("no sample %s%r" % (name, labels))
    return metrics[key]


class Monitoring(CtlTest):
    """status, metrics and the exit statuses monitoring relies on."""

    def deliver(self, *rcpts):
        type(self).seq += 1
        res = subprocess.run([TRANSPORT, "-c", self.conf, "-f", MAILBOX, "-q", "M%d" % self.seq,
                              "-n", "noreply", "--", *rcpts],
                             input=b"Subject: x\n\nx\n", capture_output=True, timeout=60)
        type(self).outputs.append(res.stdout.decode() + res.stderr.decode())
        return res.returncode

    def promtool_check(self, text):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool missing: apt-get install prometheus "
                                       "(scripts/install-deps.sh)")
        p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode() + text)

    def test_status_and_metrics_after_mixed_deliveries(self):
        # 2 sent (3 recipients), 2 throttled (432 4.3.2 at AUTH, 4.7.500 after the data),
        # 1 bounced (5.1.1).
        g0 = self.entra_grants()
        self.assertEqual(self.deliver("a@example.org", "b@example.org"), OK)
        self.assertEqual(self.deliver("c@example.org"), OK)
        self.env.set_faults([{"stage": "auth", "count": 1, "id": self.seq,
                              "reply": "432 4.3.2 Concurrent connections limit exceeded. "
                                       "Visit https://aka.ms/concurrent_sending"}])
        self.assertEqual(self.deliver("d@example.org"), TEMPFAIL)
        self.env.set_faults([{"stage": "rcpt", "rcpt": "gone@example.org", "id": self.seq,
                              "reply": "550 5.1.1 User unknown"}])
        self.assertEqual(self.deliver("gone@example.org"), 67)
        self.env.set_faults([{"stage": "eod", "count": 1, "id": self.seq,
                              "reply": "451 4.7.500 Server busy. Please try again later"}])
        self.assertEqual(self.deliver("e@example.org"), TEMPFAIL)
        self.env.set_faults([])

        r = self.ctl("status")
        self.assertEqual(r.rc, OK, r)
        lines = r.out.splitlines()
        self.assertRegex(lines[0], r"^ACCOUNT +METHOD +TOKEN +SENT 24h/all +DEFERRED 24h/all +"
                                   r"BOUNCED 24h/all +THROTTLES +TOKEN REQ/FAIL +RCPTS 24h +"
                                   r"MSGS 1min$", r)
        self.assertRegex(lines[1], r"^noreply +smtp +valid \d+ min +2/2 +2/2 +1/1 +2 +1/0 +"
                                   r"3/10000 +2/30$", r)
        self.assertRegex(r.out, r"noreply: last failed delivery \d{4}-\d\d-\d\d .* UTC, "
                                r"deferred \(throttle\): 4\.7\.500 .*Server busy", r)
        self.assertRegex(r.out, r"Server busy.*\n  fix: \S", r)
        self.assertEqual(self.ctl("status", "noreply").out, r.out)

        r = self.ctl("metrics")
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(r.err, "", r)
        self.promtool_check(r.out)
        m = parse_metrics(r.out)
        acc = {"account": "noreply"}
        self.assertEqual(metric(m, "o365relay_deliveries_sent_total", **acc), 2)
        self.assertEqual(metric(m, "o365relay_deliveries_deferred_total", reason="throttle",
                                **acc), 2)
        self.assertEqual(metric(m, "o365relay_deliveries_deferred_total", reason="network",
                                **acc), 0)
        self.assertEqual(metric(m, "o365relay_deliveries_bounced_total", reason="recipient",
                                **acc), 1)
        self.assertEqual(metric(m, "o365relay_throttles_total", kind="smtp_4.3.2", **acc), 1)
        self.assertEqual(metric(m, "o365relay_throttles_total", kind="smtp_4.7.500", **acc), 1)
        self.assertEqual(metric(m, "o365relay_throttles_total", kind="graph_429", **acc), 0)
        self.assertEqual(metric(m, "o365relay_token_requests_total", **acc), 1)
        self.assertEqual(metric(m, "o365relay_token_failures_total", **acc), 0)
        self.assertEqual(metric(m, "o365relay_recipients_sent_total", **acc), 3)
        self.assertEqual(metric(m, "o365relay_recipients_last_24h", **acc), 3)
        self.assertEqual(metric(m, "o365relay_recipients_last_24h_limit", **acc), 10000)
        self.assertEqual(metric(m, "o365relay_messages_last_minute", **acc), 2)
        self.assertEqual(metric(m, "o365relay_messages_last_minute_limit", **acc), 30)
        self.assertEqual(metric(m, "o365relay_deliveries_deferred_last_24h", **acc), 2)
        self.assertEqual(metric(m, "o365relay_token_usable", **acc), 1)
        self.assertGreater(metric(m, "o365relay_token_expiry_seconds", **acc), 120)
        self.assertEqual(metric(m, "o365relay_account_info", mailbox=MAILBOX, method="smtp",
                                **acc), 1)
        # What the counters say is what the fake saw.
        self.assertEqual(self.entra_grants() - g0,
                         metric(m, "o365relay_token_requests_total", **acc))

    def test_token_failure_shows_in_status_metrics_and_exit_codes(self):
        self.set_entra_faults([{"kind": "aadsts", "code": 7000222, "id": self.seq}])
        self.assertEqual(self.ctl("token", "refresh", "noreply").rc, CONFIG)
        self.assertEqual(self.deliver("x@example.org"), TEMPFAIL)  # in backoff: no request
        r = self.ctl("token", "status")
        self.assertEqual(r.rc, FAILED, r)
        r = self.ctl("check")
        self.assertEqual(r.rc, FAILED, r)
        r = self.ctl("status")
        self.assertEqual(r.rc, OK, r)
        self.assertRegex(r.out.splitlines()[1],
                         r"^noreply +smtp +backoff \d+ s +0/0 +1/1 +0/0 +0 +2/2 +0/10000 +0/30$",
                         r)
        self.assertRegex(r.out, r"noreply: token refresh failed .* \(configuration\): "
                                r".*AADSTS7000222", r)
        self.assertRegex(r.out, r"deferred \(token\): 4\.7\.0 ", r)
        r = self.ctl("metrics")
        self.assertEqual(r.rc, OK, r)
        self.promtool_check(r.out)
        m = parse_metrics(r.out)
        self.assertEqual(metric(m, "o365relay_token_usable", account="noreply"), 0)
        self.assertEqual(metric(m, "o365relay_token_refresh_failed", account="noreply"), 1)
        self.assertGreater(metric(m, "o365relay_token_backoff_seconds", account="noreply"), 0)
        self.assertEqual(metric(m, "o365relay_token_failures_total", account="noreply"), 2)
        self.assertEqual(metric(m, "o365relay_deliveries_deferred_total", account="noreply",
                                reason="token"), 1)
        # Fixed: every exit status is 0 again.
        self.set_entra_faults([])
        self.assertEqual(self.ctl("token", "refresh", "noreply").rc, OK)
        self.assertEqual(self.ctl("token", "status").rc, OK)
        self.assertEqual(self.ctl("check").rc, OK)

    def test_counters_refused_when_not_trusted(self):
        self.assertEqual(self.ctl("token", "refresh", "noreply").rc, OK)
        cdir = os.path.join(self.state_dir, "counters")
        os.chmod(cdir, 0o755)
        r = self.ctl("metrics")
        self.assertEqual(r.rc, TEMPFAIL, r)
        self.assertIn(cdir, r.err, r)
        self.assertIn("o365relay_state_readable{account=\"noreply\"} 0", r.out, r)
        r = self.ctl("status")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("chmod 700 " + cdir, r.out, r)

    def test_status_unknown_account_and_no_state(self):
        r = self.ctl("status", "nobody")
        self.assertEqual(r.rc, USAGE, r)
        r = self.ctl("status")  # nothing ever ran: zeros, no state created
        self.assertEqual(r.rc, OK, r)
        self.assertRegex(r.out.splitlines()[1], r"^noreply +smtp +none +0/0 +0/0 +0/0 +0 +0/0 ")
        self.assertIn("no errors recorded", r.out, r)
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "counters")))
        r = self.ctl("metrics")
        self.assertEqual(r.rc, OK, r)
        self.promtool_check(r.out)


class Login(CtlTest):
    def delegated_setup(self, polls=("authorization_pending",), outcome="approve"):
        self.set_entra_config({
            # docs/entra-setup.md: "Allow public client flows: Yes" for delegated accounts
            "clients": {harness.CLIENT_ID: dict(self.entra_base["clients"][harness.CLIENT_ID],
                                                public=True)},
            "device_code": {"interval": 1, "expires_in": 60, "polls": list(polls),
                            "outcome": outcome, "mailbox": USER_MAILBOX}})
        return self.write_config(extra=self.DELEGATED)

    def test_login_delegated_stores_refresh_token(self):
        conf = self.delegated_setup()
        r = self.ctl("token", "status", "user", conf=conf)
        self.assertEqual(r.rc, FAILED, r)  # no usable token before the login
        self.assertIn("none: run `o365relayctl login user`", r.out, r)
        r = self.ctl("login", "user", conf=conf)
        self.assertEqual(r.rc, OK, r)
        self.assertIn("https://microsoft.com/devicelogin", r.out, r)
        self.assertRegex(r.out, r"\b[A-Z0-9]{9}\b", r)  # the user code
        self.assertIn("signed in", r.out, r)
        self.assertEqual(self.entra_grants("urn:ietf:params:oauth:grant-type:device_code") >= 2,
                         True)
        path = os.path.join(self.state_dir, "tokens", "user.json")
        st = os.stat(path)
        self.assertEqual(st.st_mode & 0o777, 0o600)
        e = self.entry("user")
        self.assertTrue(e["refresh_token"])
        with open(os.path.join(self.env.entra_state, "refresh_tokens.json")) as f:
            self.assertIn(e["refresh_token"], f.read())
        r = self.ctl("token", "status", "user", conf=conf)
        self.assertEqual(r.rc, OK, r)
        self.assertIn("refresh token: stored", r.out, r)
        self.assertIn("delegated", r.out, r)
        # the stored refresh token works: check authenticates as the user
        st0 = self.env.stats()
        r = self.ctl("check", "user", conf=conf)
        self.assertEqual(r.rc, OK, r)
        self.assertEqual(self.env.stats()["auth_ok"] - st0["auth_ok"], 1)

    def test_login_declined_exits_1(self):
        conf = self.delegated_setup(polls=(), outcome="decline")
        r = self.ctl("login", "user", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("authorization_declined", r.out, r)
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "tokens", "user.json"))
                         and self.entry("user").get("refresh_token"))

    def test_login_not_completed_in_time_exits_1(self):
        self.set_entra_config({
            "clients": {harness.CLIENT_ID: dict(self.entra_base["clients"][harness.CLIENT_ID],
                                                public=True)},
            "device_code": {"interval": 1, "expires_in": 2,
                            "polls": ["authorization_pending"] * 10, "mailbox": USER_MAILBOX}})
        conf = self.write_config(extra=self.DELEGATED)
        r = self.ctl("login", "user", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("expired_token", r.out, r)
        self.assertIn("o365relayctl login user", r.out, r)

    def test_login_entra_unreachable_exits_75(self):
        conf = self.write_config(
            extra=self.DELEGATED + "authority = https://127.0.0.1:%d\n" % free_port())
        r = self.ctl("login", "user", conf=conf)
        self.assertEqual(r.rc, TEMPFAIL, r)

    def test_login_client_credentials_account_exits_64(self):
        r = self.ctl("login", "noreply")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("client_credentials", r.err, r)
        self.assertEqual(self.env.entra_stats().get("by_endpoint", {}).get("devicecode", 0), 0)

    def test_delegated_without_login_check_says_login(self):
        conf = self.delegated_setup()
        r = self.ctl("check", "user", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("o365relayctl login user", r.out, r)


class SendTest(CtlTest):
    def test_send_test_delivers(self):
        n0 = len(self.env.messages())
        r = self.ctl("send-test", "noreply", "bob@example.org")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("2.0.0", r.out, r)
        self.assertIn("250 2.0.0 OK", r.out, r)
        msgs = self.env.messages()[n0:]
        self.assertEqual(len(msgs), 1)
        env, body = msgs[0]
        self.assertEqual(env["rcpt_to"], ["bob@example.org"])
        self.assertEqual(env["mail_from"], MAILBOX)
        self.assertIn(b"Subject: o365relay test message", body)
        self.assertIn(b"To: <bob@example.org>", body)
        self.assertIn(b"\r\n", body)
        self.assertIn("status=sent", self.log_text())

    def test_send_test_refused_recipient(self):
        self.env.set_faults([{"stage": "rcpt", "rcpt": "gone@example.org",
                              "reply": "550 5.1.1 User unknown"}])
        n0 = len(self.env.messages())
        r = self.ctl("send-test", "noreply", "gone@example.org")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("5.1.1", r.out, r)
        self.assertIn("550 5.1.1 User unknown", r.out, r)
        self.assertEqual(len(self.env.messages()), n0)

    def test_send_test_as_other_sender(self):
        n0 = len(self.env.messages())
        r = self.ctl("send-test", "-f", "app@apps.contoso.com", "noreply", "bob@example.org")
        self.assertEqual(r.rc, OK, r)
        env, body = self.env.messages()[n0]
        self.assertEqual(env["mail_from"], "app@apps.contoso.com")
        self.assertIn(b"From: o365relay test <app@apps.contoso.com>", body)

    def test_send_test_send_as_denied_names_the_fix(self):
        self.env.set_o365_config({}, mailboxes={MAILBOX: {"send_as": []}})
        r = self.ctl("send-test", "-f", "app@apps.contoso.com", "noreply", "bob@example.org")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("5.2.252 SendAsDenied", r.out, r)
        self.assertIn("Add-RecipientPermission -Identity app@apps.contoso.com -Trustee "
                      "noreply@contoso.com -AccessRights SendAs", r.out, r)

    def test_send_test_sender_not_in_account(self):
        r = self.ctl("send-test", "-f", "x@elsewhere.example", "noreply", "bob@example.org")
        self.assertEqual(r.rc, TEMPFAIL, r)
        self.assertIn("4.3.5", r.out, r)

    def test_send_test_deferred_exits_75(self):
        self.env.set_faults([{"stage": "eod", "reply": "451 4.7.500 Server busy"}])
        r = self.ctl("send-test", "noreply", "bob@example.org")
        self.assertEqual(r.rc, TEMPFAIL, r)
        self.assertIn("4.7.500", r.out, r)

    def test_send_test_missing_transport(self):
        argv = [CTL, "-c", self.conf, "-T", os.path.join(self.tdir, "nope"), "send-test",
                "noreply", "bob@example.org"]
        p = subprocess.run(argv, capture_output=True, timeout=30)
        r = Run(argv, p, 0)
        self.assertEqual(r.rc, CONFIG, r)
        self.assertIn("nope", r.text, r)


class Privileges(CtlTest):
    """Run as root with [relay] user = o365relay: the cache files belong to that user."""

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_drops_to_service_user(self):
        pw = stack.ensure_service_user()
        # the service user must reach the test dirs and own its credential files
        for d in (self.env.dir, self.env.certs, self.tdir):
            os.chmod(d, 0o755)
        key = os.path.join(self.tdir, "app.key")
        shutil.copy(os.path.join(self.env.certs, "app.key"), key)
        os.chown(key, pw.pw_uid, pw.pw_gid)
        os.chmod(key, 0o600)
        os.makedirs(self.state_dir)
        os.chown(self.state_dir, pw.pw_uid, pw.pw_gid)
        log = os.path.join(self.tdir, "svc.log")
        conf = self.write_config(relay={"user": "o365relay", "log": "file:" + log},
                                 entra={"private_key_file": key})
        r = self.ctl("token", "refresh", "noreply", conf=conf)
        self.assertEqual(r.rc, OK, r)
        st = os.stat(os.path.join(self.state_dir, "tokens", "noreply.json"))
        self.assertEqual((st.st_uid, st.st_gid), (pw.pw_uid, pw.pw_gid))
        st = os.stat(os.path.join(self.state_dir, "tokens"))
        self.assertEqual(st.st_uid, pw.pw_uid)
        r = self.ctl("check", conf=conf)
        self.assertEqual(r.rc, OK, r)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_unknown_service_user_is_config_error(self):
        conf = self.write_config(relay={"user": "no-such-user-o365"})
        r = self.ctl("token", "status", conf=conf)
        self.assertEqual(r.rc, CONFIG, r)
        self.assertIn("no-such-user-o365", r.err, r)


class Graph(CtlTest):
    """Accounts with method = graph, against fake_graph.py (tests/fakes/README.md) and a
    fake Entra that issues Graph tokens too."""

    ACCOUNTS = "".join(
        "[account %s]\nmailbox = %s\nmethod = graph\n" % kv for kv in (
            ("graphy", "other@contoso.com"), ("gscoped", "scoped@contoso.com"),
            ("gonprem", "onprem@contoso.com"), ("gnouser", "nobody@contoso.com"),
            ("gfull", "full@contoso.com")))

    @classmethod
    def setUpClass(cls):
        cls.env = GraphEnv("ctlgraph")
        cls.env.start_o365()
        cls.env.start_entra_for_graph()
        cls.env.start_graph()
        with open(os.path.join(cls.env.entra_state, "config.json")) as f:
            cls.entra_base = json.load(f)
        cls.seq = 0
        cls.outputs = []

    def setUp(self):
        super().setUp()
        self.env.set_graph_config({})
        self.env.set_graph_faults([])
        self.conf = self.write_config(extra=self.graph_section() + self.ACCOUNTS)

    def graph_section(self):
        return "[graph]\nendpoint = https://localhost:%d\nca_file = %s\nhttp_timeout = 10\n" % (
            self.env.graph_port, os.path.join(self.env.certs, "ca.crt"))

    def graph_requests(self, route="sendMail"):
        try:
            return self.env.graph_stats().get("by_route", {}).get(route, 0)
        except FileNotFoundError:
            return 0

    def o365_auths(self):
        return self.env.stats().get("auth_attempts", 0)

    def test_check_graph_account_proves_mail_send_and_sends_nothing(self):
        before, auths, deliveries = self.graph_requests(), self.o365_auths(), \
            len(self.env.deliveries())
        r = self.ctl("check", "graphy")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("ok    token from Entra ID for Graph", r.out, r)
        self.assertRegex(r.out, r"ok +Graph localhost\[127\.0\.0\.1\]:\d+: the app may send as "
                                r"other@contoso\.com", r)
        self.assertIn("check passed", r.out, r)
        self.assertEqual(self.graph_requests() - before, 1)      # one harmless request
        self.assertEqual(len(self.env.deliveries()), deliveries)  # nothing sent
        self.assertEqual(self.o365_auths(), auths)                # no SMTP for a Graph account
        # the Graph token lives in its own entry; no SMTP token was fetched
        tokens = os.path.join(self.state_dir, "tokens")
        self.assertTrue(os.path.exists(os.path.join(tokens, "graphy+graph.json")))
        self.assertFalse(os.path.exists(os.path.join(tokens, "graphy.json")))

    def test_check_access_denied_prints_the_permission_fix(self):
        r = self.ctl("check", "gscoped")
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("HTTP 403 ErrorAccessDenied", r.out, r)
        self.assertIn("Mail.Send", r.out, r)
        self.assertIn("New-ManagementRoleAssignment -App %s" % harness.CLIENT_ID, r.out, r)
        self.assertIn("New-ApplicationAccessPolicy", r.out, r)
        self.assertIn("scoped@contoso.com", r.out, r)
        self.assertIn("check FAILED", r.out, r)

    def test_check_invalid_user_and_on_premises_mailbox(self):
        for account, code, fix in (
                ("gnouser", "ErrorInvalidUser", "Exchange Online license"),
                ("gonprem", "MailboxNotEnabledForRESTAPI", "method = smtp"),
                ("gfull", "ErrorQuotaExceeded", "Sent Items")):
            r = self.ctl("check", account)
            self.assertEqual(r.rc, FAILED, r)
            self.assertIn(code, r.out, r)
            self.assertIn(fix, r.out, r)

    def test_check_graph_unreachable(self):
        port = free_port()
        conf = self.write_config(extra=self.graph_section().replace(
            str(self.env.graph_port), str(port)) + self.ACCOUNTS)
        r = self.ctl("check", "graphy", conf=conf)
        self.assertEqual(r.rc, FAILED, r)
        self.assertIn("FAIL  Graph localhost", r.out, r)
        self.assertIn("[graph] endpoint", r.out, r)

    def test_check_revoked_graph_token_is_refreshed_once(self):
        self.assertEqual(self.ctl("check", "graphy").rc, OK)
        grants = self.entra_grants()
        subprocess.run(
            [sys.executable, os.path.join(HERE, "..", "fakes", "fake_graph.py"), "revoke",
             "--state", self.env.graph_state, "--seen"], check=True)
        r = self.ctl("check", "graphy")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("Graph refused the token (HTTP 401", r.out, r)
        self.assertEqual(self.entra_grants() - grants, 1)

    def test_token_status_one_line_per_account_and_audience(self):
        self.assertEqual(self.ctl("token", "refresh", "noreply").rc, OK)
        r = self.ctl("token", "refresh", "graphy")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("new token obtained for Graph", r.out, r)
        tokens = os.path.join(self.state_dir, "tokens")
        self.assertTrue(os.path.exists(os.path.join(tokens, "graphy+graph.json")))
        self.assertFalse(os.path.exists(os.path.join(tokens, "graphy.json")))
        # Exit 1: the other Graph accounts of this config have no token yet.
        r = self.ctl("token", "status")
        self.assertEqual(r.rc, FAILED, r)
        r = self.ctl("token", "status", "graphy")
        self.assertEqual(r.rc, OK, r)
        r = self.ctl("token", "status")
        lines = r.out.splitlines()
        for account, used, other in (("noreply", "SMTP", "Graph"), ("graphy", "Graph", "SMTP")):
            i = next(n for n, line in enumerate(lines) if line.startswith("account %s " % account))
            self.assertIn("method = %s" % ("graph" if used == "Graph" else "smtp"), lines[i])
            self.assertRegex(lines[i + 1], r"^  %s token \(used by method = \w+\): valid, "
                                           r"expires \d{4}-.*obtained: \d{4}-.*last error: none$"
                             % used)
            self.assertEqual(lines[i + 2], "  %s token: none cached" % other)
        with open(os.path.join(tokens, "graphy+graph.json")) as f:
            e = json.load(f)
        self.assertNotIn(e["access_token"], r.text)

    def test_send_test_through_graph(self):
        r = self.ctl("send-test", "graphy", "bob@example.org")
        self.assertEqual(r.rc, OK, r)
        self.assertIn("exit 0", r.out, r)
        got = self.env.received("bob@example.org")
        self.assertEqual(len(got), 1)
        self.assertIn(b"This is a test message", got[0])
        r = self.ctl("send-test", "gscoped", "bob@example.org")
        self.assertEqual(r.rc, TEMPFAIL, r)
        self.assertIn("ErrorAccessDenied", r.out, r)
        self.assertIn("fix: the app may not send as scoped@contoso.com", r.out, r)


def main():
    global CTL, TRANSPORT
    if len(sys.argv) < 3:
        sys.exit("usage: test_ctl.py O365RELAYCTL O365RELAY-TRANSPORT [unittest args]")
    CTL = os.path.abspath(sys.argv[1])
    TRANSPORT = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)


if __name__ == "__main__":
    main()
