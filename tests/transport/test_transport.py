#!/usr/bin/env python3
"""End-to-end tests of the REAL o365relay-transport binary against the fakes.

Usage: test_transport.py /path/to/o365relay-transport [unittest args]

Each delivery runs the binary as pipe(8) would (docs/design.md section 4):
  o365relay-transport -c CONF -f SENDER -q QUEUEID -n NEXTHOP -- RCPT...
with the message on stdin (LF line endings), and checks the exit status, the
one status line on stdout, what fake_o365.py received and recorded, how many
tokens fake_entra.py issued, and the transport's log file.
"""
import base64
import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MAILBOX  # noqa: E402

BIN = None  # set from argv in main
from harness import PERMANENT, SIMPLE, TEMPFAIL, Result, normalized  # noqa: E402


class TransportTestBase(unittest.TestCase):
    """Shared fakes for the whole class; a fresh state dir (cold token cache) per test."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.Env("transport")
        cls.o365_port = cls.env.start_o365()
        cls.entra_port = cls.env.start_entra()
        cls.seq = 0

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        type(self).seq += 1
        self.env.set_faults([])
        self.env.set_o365_config({})
        self.env.set_entra_faults([])
        self.env.set_entra_config()
        self.deadlines = {}  # config path -> its [smtp] deadline
        self.tdir = os.path.join(self.env.dir, "t%03d" % self.seq)
        os.makedirs(self.tdir)
        self.state_dir = os.path.join(self.tdir, "state")
        self.log = os.path.join(self.tdir, "transport.log")
        self.conf = self.write_config()

    def tearDown(self):
        # No token value ever reaches the transport's log, whatever the test did.
        self.assert_no_token_in_log()
        # Never: bytes pipelined after STARTTLS (injection), content before 354,
        # AUTH or MAIL in plaintext (counters since the fake started).
        st = self.env.stats()
        for k in ("plaintext_after_starttls", "pipelining_violations", "auth_before_tls",
                  "mail_before_tls"):
            self.assertEqual(st[k], 0, k)

    # --- configuration --------------------------------------------------------
    def write_config(self, smtp=None, relay=None, policy=None, account=None, extra="",
                     entra=None, name=None):
        s = {"host": "localhost", "port": self.o365_port, "helo_name": "relay.test",
             "ca_file": os.path.join(self.env.certs, "ca.crt"), "connect_timeout": 3,
             "command_timeout": 2, "data_timeout": 3, "deadline": 60}
        s.update(smtp or {})
        r = {"state_dir": self.state_dir, "log": "file:" + self.log, "log_level": "debug"}
        r.update(relay or {})
        p = {"null_sender": "rewrite", "null_sender_account": "noreply"}
        p.update(policy or {})
        a = {"mailbox": MAILBOX, "senders": "noreply@contoso.com, @apps.contoso.com"}
        a.update(account or {})
        e = self.env.entra_settings()
        e.update(entra or {})

        def sect(name, d):
            return "[%s]\n" % name + "".join("%s = %s\n" % kv for kv in d.items() if kv[1] is not None)
        text = (sect("relay", r) + sect("smtp", s) + sect("entra", e) + sect("account noreply", a)
                + sect("account other", {"mailbox": "other@contoso.com",
                                         "senders": "other@contoso.com"})
                + sect("policy", p) + extra)
        path = os.path.join(self.tdir, name or "o365relay.conf")
        with open(path, "w") as f:
            f.write(text)
        self.deadlines[path] = int(s["deadline"])
        return path

    # --- running the transport ------------------------------------------------------
    def argv(self, sender=MAILBOX, rcpts=("bob@example.org",), nexthop="noreply",
             qid="4F2A31C2D", conf=None):
        return [BIN, "-c", conf or self.conf, "-f", sender, "-q", qid, "-n", nexthop, "--",
                *rcpts]

    def deliver(self, msg=SIMPLE, timeout=90, env=None, **kw):
        argv = self.argv(**kw)
        t0 = time.time()
        p = subprocess.run(argv, input=msg, capture_output=True, timeout=timeout, env=env)
        res = Result(argv, p, time.time() - t0, conf=kw.get("conf") or self.conf)
        self.check_output_contract(res)
        self.assert_within_deadline(res)
        return res

    def assert_within_deadline(self, res):
        """Whatever the fault, a delivery attempt ends by [smtp] deadline + 2 s
        (docs/fault-matrix.md). Applied to every delivery of a config we wrote."""
        deadline = self.deadlines.get(res.conf)
        if deadline is not None:
            self.assertLessEqual(res.elapsed, deadline + 2, "over deadline + 2 s: %r" % res)

    def check_output_contract(self, res):
        """Exactly one line on stdout, starting with an enhanced status code that agrees
        with the exit status; nothing on stderr (the log goes to a file)."""
        self.assertTrue(res.out, "no status line: %r" % res)
        self.assertLessEqual(res.out.count(b"\n"), 1, res)
        self.assertTrue(res.out.count(b"\n") == 0 or res.out.endswith(b"\n"), res)
        self.assertNotIn(b"\r", res.out, res)
        self.assertRegex(res.line, r"^[245]\.\d{1,3}\.\d{1,3} \S", res)
        want = {0: "2"}.get(res.rc, "4" if res.rc == TEMPFAIL else "5")
        self.assertEqual(res.dsn[0], want, "status line does not agree with exit status: %r" % res)
        if res.rc not in (0, TEMPFAIL):
            self.assertIn(res.rc, PERMANENT | {78}, res)
        self.assertEqual(res.err, b"", res)

    def assert_delivered(self, res):
        self.assertEqual(res.rc, 0, res)
        self.assertTrue(res.line.startswith("2.0.0 "), res)
        self.assertIn("250 2.0.0 OK", res.line, res)

    def assert_deferred(self, res, dsn=None, text=None):
        self.assertEqual(res.rc, TEMPFAIL, res)
        self.assertTrue(res.line.startswith("4."), res)
        if dsn:
            self.assertEqual(res.dsn, dsn, res)
        if text:
            self.assertIn(text, res.line, res)

    def assert_permanent(self, res, dsn=None, rc=None, text=None):
        self.assertIn(res.rc, PERMANENT, res)
        if rc is not None:
            self.assertEqual(res.rc, rc, res)
        if dsn:
            self.assertEqual(res.dsn, dsn, res)
        if text:
            self.assertIn(text, res.line, res)

    # --- what the fakes saw ----------------------------------------------------
    def snapshot(self):
        return {"o365": self.env.stats(), "entra": self.env.entra_token_requests(),
                "messages": len(self.env.messages())}

    def delta(self, before, key):
        now = self.env.stats()
        return now[key] - before["o365"][key]

    def new_messages(self, before):
        return self.env.messages()[before["messages"]:]

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def assert_no_token_in_log(self):
        text = self.log_text()
        if not text:
            return
        for tok in self.env.issued_tokens():
            self.assertNotIn(tok, text, "an access token is in the transport log")
            blob = base64.b64encode(("user=%s\x01auth=Bearer %s\x01\x01" % (MAILBOX, tok))
                                    .encode()).decode()
            self.assertNotIn(blob[:40], text, "an XOAUTH2 string is in the transport log")
        # anything shaped like a fake token that verifies is a leaked token
        for cand in re.findall(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}", text):
            self.assertIsNone(harness.fake_tokens.verify(self.env.key, cand),
                              "a valid token is in the transport log")
        self.assertNotIn("Bearer ", text.replace("Bearer [redacted]", ""))


class Delivery(TransportTestBase):
    def test_simple_delivery_and_log_line(self):
        before = self.snapshot()
        res = self.deliver()
        self.assert_delivered(res)
        msgs = self.new_messages(before)
        self.assertEqual(len(msgs), 1)
        env, body = msgs[0]
        self.assertEqual(env["mailbox"], MAILBOX)
        self.assertEqual(env["mail_from"], MAILBOX)
        self.assertEqual(env["rcpt_to"], ["bob@example.org"])
        self.assertEqual(body, normalized(SIMPLE))
        self.assertEqual(self.delta(before, "auth_before_tls"), 0)
        self.assertEqual(self.delta(before, "mail_before_tls"), 0)
        # O365-FACTS: the token goes after the 334, not as an initial response
        auths = [e for e in self.env.events("auth_xoauth2") if e["conn"] > before["o365"]["connections"]]
        self.assertEqual([e["initial_response"] for e in auths], [False])
        # docs/design.md section 7: one line per delivery attempt in Postfix's manner
        pat = (r"o365relay-transport\[\d+\]: 4F2A31C2D: to=<bob@example\.org>, account=noreply, "
               r"relay=localhost\[127\.0\.0\.1\]:%d, delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, "
               r"dsn=2\.0\.0, status=sent \(250 2\.0\.0 OK <[^>]*> \[Hostname=[^\]]+\]\)"
               % self.o365_port)
        self.assertRegex(self.log_text(), pat)

    def test_several_recipients_one_transaction(self):
        before = self.snapshot()
        rcpts = ("a@example.org", "b@example.net", "c@example.com")
        self.assert_delivered(self.deliver(rcpts=rcpts))
        msgs = self.new_messages(before)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0][0]["rcpt_to"], list(rcpts))
        log = self.log_text()
        for r in rcpts:
            self.assertRegex(log, r"4F2A31C2D: to=<%s>, .*status=sent" % re.escape(r))

    def test_token_cached_between_deliveries(self):
        before = self.snapshot()
        for _ in range(3):
            self.assert_delivered(self.deliver())
        self.assertEqual(self.env.entra_token_requests() - before["entra"], 1)

    def test_sender_resolved_without_account_nexthop(self):
        before = self.snapshot()
        res = self.deliver(sender="app1@apps.contoso.com", nexthop="example.org",
                           msg=SIMPLE.replace(b"From: noreply@contoso.com",
                                              b"From: app1@apps.contoso.com"))
        self.assert_delivered(res)
        env, _ = self.new_messages(before)[0]
        self.assertEqual(env["mailbox"], MAILBOX)
        self.assertEqual(env["mail_from"], "app1@apps.contoso.com")

    def test_unknown_sender_is_permanent_and_sends_nothing(self):
        before = self.snapshot()
        res = self.deliver(sender="stranger@elsewhere.example", nexthop="example.org")
        self.assert_permanent(res, dsn="5.7.1")
        self.assertEqual(self.delta(before, "mail_commands"), 0)

    def test_account_sender_mismatch_defers_435(self):
        before = self.snapshot()
        res = self.deliver(sender="noreply@contoso.com", nexthop="other")
        self.assert_deferred(res, dsn="4.3.5")
        self.assertIn("other", res.line)
        self.assertEqual(self.delta(before, "mail_commands"), 0)


class NextHop(TransportTestBase):
    """-n names an account (o365:ACCOUNT) or is Postfix's default next hop."""

    def test_unknown_account_defers_435_and_connects_nowhere(self):
        # An account renamed or removed while mail for it is queued: our mistake,
        # never a bounce, and the sender (which another account could send for)
        # must not be used instead.
        before = self.snapshot()
        res = self.deliver(nexthop="renamed")
        self.assert_deferred(res, dsn="4.3.5", text="account renamed")
        self.assertIn("postsuper -r", res.line)
        self.assertEqual(self.delta(before, "connections"), 0)
        self.assertEqual(self.env.entra_token_requests() - before["entra"], 0)
        self.assertRegex(self.log_text(), r"4F2A31C2D: to=<bob@example\.org>, .*dsn=4\.3\.5, "
                                          r"status=deferred")

    def test_default_nexthop_forms_resolve_from_the_sender(self):
        for hop in ("example.org", "EXAMPLE.org", "", "[smtp.example.net]:587"):
            with self.subTest(nexthop=hop):
                before = self.snapshot()
                self.assert_delivered(self.deliver(nexthop=hop))
                env, _ = self.new_messages(before)[0]
                self.assertEqual(env["mailbox"], MAILBOX)


class Envelope(TransportTestBase):
    """Addresses that can never be delivered bounce at once, and nothing is sent."""

    CASES = [
        # name, sender, recipients, exit status, dsn
        ("rcpt_no_at", MAILBOX, ("nobody",), 67, "5.1.3"),
        ("rcpt_local_65", MAILBOX, ("x" * 65 + "@example.org",), 67, "5.1.3"),
        ("rcpt_domain_too_long", MAILBOX, ("bob@" + ".".join(["d" * 60] * 5) + ".example",),
         67, "5.1.3"),
        ("rcpt_crlf", MAILBOX, ("bob@example.org\r\nRSET",), 67, "5.1.3"),
        ("rcpt_ctl", MAILBOX, ("bo\x01b@example.org",), 67, "5.1.3"),
        ("sender_crlf", "noreply@contoso.com\r\nRCPT TO:<evil@example.org>",
         ("bob@example.org",), 69, "5.1.7"),
        ("sender_local_65", "n" * 65 + "@contoso.com", ("bob@example.org",), 69, "5.1.7"),
        ("sender_no_at", "noreply", ("bob@example.org",), 69, "5.1.7"),
        # one bad recipient among good ones: one exit status for all -> defer
        ("rcpt_second_bad", MAILBOX, ("ok@example.org", "nobody"), 75, "4.1.3"),
    ]

    def test_invalid_addresses_bounce_without_connection(self):
        for name, sender, rcpts, rc, dsn in self.CASES:
            with self.subTest(name):
                before = self.snapshot()
                res = self.deliver(sender=sender, rcpts=rcpts)
                self.assertEqual(res.rc, rc, res)
                self.assertEqual(res.dsn, dsn, res)
                self.assertIn("not a valid address", res.line)
                self.assertEqual(self.delta(before, "connections"), 0, res)
                self.assertEqual(self.env.entra_token_requests() - before["entra"], 0, res)
        # no control character reaches the log
        for line in self.log_text().splitlines():
            self.assertNotIn("\r", line)
            self.assertFalse(line.startswith("RSET") or line.startswith("RCPT"), line)


class ConfigProblems(TransportTestBase):
    """Every configuration problem defers with 4.3.5 and says what to fix."""

    def test_directory_or_empty_file_as_config_defers_435(self):
        empty = os.path.join(self.tdir, "empty.conf")
        open(empty, "w").close()
        for conf in (self.tdir, empty):
            with self.subTest(conf=os.path.basename(conf)):
                before = self.snapshot()
                res = self.deliver(conf=conf)
                self.assert_deferred(res, dsn="4.3.5")
                self.assertIn(conf, res.line)
                self.assertEqual(self.delta(before, "connections"), 0)

    def test_unreadable_config_defers_435(self):
        res = self.deliver(conf=os.path.join(self.tdir, "missing.conf"))
        self.assert_deferred(res, dsn="4.3.5", text="configuration error")

    def test_usage_error_defers_435(self):
        argv = [BIN, "-c", self.conf, "-f", MAILBOX, "-x", "1", "--", "bob@example.org"]
        p = subprocess.run(argv, input=SIMPLE, capture_output=True, timeout=30)
        res = Result(argv, p, 0)
        self.check_output_contract(res)
        self.assert_deferred(res, dsn="4.3.5", text="master.cf")


def _body_cases():
    return {
        "dots": b"From: noreply@contoso.com\n\n.\n..\n.x\n...\nend\n",
        "lone_dot_line_mid": b"From: noreply@contoso.com\n\nbefore\n.\nafter\n",
        "crlf_dot_crlf_in_content": b"From: noreply@contoso.com\r\n\r\nA\r\n.\r\nB\r\n",
        "lone_cr": b"From: noreply@contoso.com\n\na\rb\r\rc\n\r.\n",
        "mixed_crlf_lf": b"From: noreply@contoso.com\r\nSubject: m\n\r\nx\r\ny\nz\r\n",
        "eight_bit": b"From: noreply@contoso.com\nSubject: caf\xc3\xa9\n\n\xe9\xff\x80 bytes\n",
        "long_lines": b"From: noreply@contoso.com\n\n" + b"y" * 20000 + b"\n." + b"z" * 5000 + b"\n",
        "no_final_newline": b"From: noreply@contoso.com\n\nlast line",
        "no_final_newline_dot": b"From: noreply@contoso.com\n\n.",
        "headers_only": b"From: noreply@contoso.com\nSubject: h\n",
        "final_lone_cr": b"From: noreply@contoso.com\n\nends in CR\r",
        "big_2mb": b"From: noreply@contoso.com\n\n" + b"".join(
            b".%06d line of text that is long enough\n" % i for i in range(50000)),
    }


class ByteExact(TransportTestBase):
    pass


def _make_body_test(name, msg):
    def t(self):
        before = self.snapshot()
        self.assert_delivered(self.deliver(msg=msg))
        msgs = self.new_messages(before)
        self.assertEqual(len(msgs), 1)
        got = msgs[0][1]
        want = normalized(msg)
        if got != want:
            i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                     min(len(got), len(want)))
            self.fail("body differs at byte %d: got %r, want %r (sizes %d/%d)"
                      % (i, got[max(0, i - 20):i + 20], want[max(0, i - 20):i + 20],
                         len(got), len(want)))
        self.assertEqual(msgs[0][0]["bare_lf"], 0)
    t.__name__ = "test_body_" + name
    return t


for _n, _m in _body_cases().items():
    setattr(ByteExact, "test_body_" + _n, _make_body_test(_n, _m))


# stage -> (4xx reply, 5xx reply, expectation for the 5xx reply)
# expectation: ("temp", dsn) or ("perm", dsn, exit status or None)
FAULT_TABLE = {
    "greeting": ("421 4.3.2 Service not available", "554 5.3.2 Service refused",
                 ("temp", "4.3.2")),
    "ehlo": ("451 4.3.0 Try again", "550 5.5.0 EHLO refused", ("temp", "4.5.0")),
    # the second EHLO, after the TLS handshake (rule {"stage": "ehlo", "tls": true})
    "ehlo_tls": ("451 4.3.0 Try again", "550 5.5.0 EHLO refused", ("temp", "4.5.0")),
    "starttls": ("454 4.7.0 TLS not available due to local problem",
                 "554 5.7.3 STARTTLS refused", ("temp", "4.7.3")),
    "auth": ("451 4.7.0 Temporary authentication failure",
             "535 5.7.3 Authentication unsuccessful [FAKE.prod.outlook.office365.test]",
             ("temp", "4.7.3")),
    "mail": ("451 4.4.0 Sender deferred", "550 5.7.1 Sender refused", ("perm", "5.7.1", None)),
    "rcpt": ("450 4.2.1 Recipient busy", "550 5.1.1 User unknown", ("perm", "5.1.1", 67)),
    "data": ("451 4.3.0 Not now", "554 5.6.0 Data refused", ("perm", "5.6.0", None)),
    "eod": ("451 4.7.500 Server busy. Please try again later",
            "554 5.6.0 Corrupt message content", ("perm", "5.6.0", None)),
}


# a test stage name -> the fake's rule fields (default: {"stage": name})
STAGE_RULES = {"ehlo_tls": {"stage": "ehlo", "tls": True}}


class Faults(TransportTestBase):
    def run_fault(self, stage, rule):
        self.env.set_faults([dict(rule, **STAGE_RULES.get(stage, {"stage": stage}))])
        before = self.snapshot()
        res = self.deliver()
        fired = self.env.stats()["faults_fired"] - before["o365"]["faults_fired"]
        self.assertGreaterEqual(fired, 1, "the fault never fired: %r" % res)
        return before, res

    def assert_stalled_ok(self, res):
        # a stall is detected by the command/data timeout, not by the deadline
        self.assertLess(res.elapsed, 30, res)


def _make_fault_test(stage, kind):
    def t(self):
        four, five, expect5 = FAULT_TABLE.get(stage, (None, None, None))
        if kind == "disconnect":
            before, res = self.run_fault(stage, {"action": "disconnect"})
            self.assert_deferred(res)
        elif kind == "stall":
            before, res = self.run_fault(stage, {"action": "stall"})
            self.assert_deferred(res)
            self.assert_stalled_ok(res)
        elif kind == "4xx":
            before, res = self.run_fault(stage, {"reply": four})
            self.assert_deferred(res, dsn=four.split()[1], text=four)
        else:
            before, res = self.run_fault(stage, {"reply": five})
            if expect5[0] == "temp":
                self.assert_deferred(res, dsn=expect5[1], text=five[4:])
            else:
                self.assert_permanent(res, dsn=expect5[1], rc=expect5[2], text=five)
        self.assertEqual(self.new_messages(before), [], "a message was accepted: %r" % res)
        self.assertEqual(self.delta(before, "auth_before_tls"), 0)
        self.assertEqual(self.delta(before, "mail_before_tls"), 0)
        if stage == "ehlo_tls":  # the fault hit the second EHLO: after TLS, before AUTH
            self.assertGreaterEqual(self.delta(before, "tls_handshakes"), 1, res)
            self.assertEqual(self.delta(before, "auth_attempts"), 0, res)
    t.__name__ = "test_%s_%s" % (stage, kind)
    return t


for _stage in ["greeting", "ehlo", "starttls", "tls", "ehlo_tls", "auth", "mail", "rcpt", "data",
               "eod"]:
    for _kind in ["disconnect", "stall", "4xx", "5xx"]:
        if _stage == "tls" and _kind in ("4xx", "5xx"):
            continue
        setattr(Faults, "test_%s_%s" % (_stage, _kind), _make_fault_test(_stage, _kind))


def _big_message(size):
    """A message of about `size` bytes: more than the socket buffers hold, so a
    fault in the body hits while the transport is still sending."""
    line = b"0123456789 body line that is long enough to make a big message quickly\n"
    return SIMPLE + line * (size // len(line))


class MessageBody(TransportTestBase):
    """Faults between 354 and the final dot (the fake's stage "body")."""

    def run_body_fault(self, rule, msg, conf=None):
        self.env.set_faults([dict(rule, stage="body")])
        before = self.snapshot()
        ev0 = len(self.env.events("body_fault"))
        res = self.deliver(msg=msg, conf=conf)
        fired = self.env.events("body_fault")[ev0:]
        self.assertEqual(len(fired), 1, "the body fault never fired: %r" % res)
        self.assertLess(fired[0]["received"], len(msg), "the whole message had arrived")
        self.assert_deferred(res)
        self.assertEqual(self.new_messages(before), [], res)
        return res

    def test_body_disconnect_defers(self):
        self.run_body_fault({"action": "disconnect"}, _big_message(4 << 20))

    def test_body_stall_defers_after_data_timeout(self):
        # The fake stops reading: the transport's writes block; data_timeout (2 s)
        # ends it, well before the deadline (60 s).
        conf = self.write_config(smtp={"data_timeout": 2}, name="data-timeout.conf")
        res = self.run_body_fault({"action": "stall", "hold": 30}, _big_message(16 << 20),
                                  conf=conf)
        self.assertLess(res.elapsed, 15, res)


class AfterDelivery(TransportTestBase):
    """Once the server said 250 at end of data, the message is delivered, whatever QUIT does."""

    def test_quit_faults_do_not_undo_delivery(self):
        for rule in ({"action": "disconnect"}, {"action": "stall"},
                     {"reply": "421 4.3.2 closing"}, {"reply": "500 5.5.1 what"}):
            with self.subTest(rule):
                self.env.set_faults([dict(rule, stage="quit")])
                before = self.snapshot()
                res = self.deliver()
                self.assert_delivered(res)
                self.assertEqual(len(self.new_messages(before)), 1)
                self.assertLess(res.elapsed, 20, res)

    def test_fails_once_then_succeeds(self):
        self.env.set_faults([{"stage": "eod", "reply": "451 4.7.500 Server busy", "count": 1}])
        before = self.snapshot()
        self.assert_deferred(self.deliver(), dsn="4.7.500")
        self.assert_delivered(self.deliver())
        self.assertEqual(len(self.new_messages(before)), 1)

    def test_slow_server_byte_at_a_time(self):
        self.env.set_faults([{"stage": "greeting", "action": "slow"}])
        before = self.snapshot()
        self.assert_delivered(self.deliver())
        self.assertEqual(len(self.new_messages(before)), 1)

    def test_auth_failure_334_json_then_535(self):
        # Every token fails (wrong tenant); the fake first sends 334 <base64 JSON error>.
        self.env.set_o365_config({"auth_failure_334": True, "tenant": "someone-else"})
        answered = len(self.env.events("auth_334_answered"))
        res = self.deliver()
        self.assert_deferred(res, dsn="4.7.3")
        self.assertIn("535 5.7.3", res.line)
        self.assertGreaterEqual(len(self.env.events("auth_334_answered")) - answered, 1)
        self.assertEqual(self.env.events("auth_334_answer_not_empty"), [])


class Security(TransportTestBase):
    def test_starttls_not_offered(self):
        self.env.set_faults([{"stage": "ehlo", "action": "no_starttls"}])
        before = self.snapshot()
        res = self.deliver()
        self.assert_deferred(res)
        self.assertEqual(self.delta(before, "auth_attempts"), 0)
        self.assertEqual(self.delta(before, "auth_before_tls"), 0)
        self.assertEqual(self.delta(before, "mail_before_tls"), 0)
        self.assertEqual(self.new_messages(before), [])

    def test_untrusted_ca_and_wrong_host_refused(self):
        for cert in ("rogue", "wronghost"):
            with self.subTest(cert):
                self.env.set_faults([{"stage": "tls", "action": "cert", "cert": cert}])
                before = self.snapshot()
                res = self.deliver()
                self.assert_deferred(res)
                self.assertEqual(self.delta(before, "auth_attempts"), 0)
                self.assertEqual(self.delta(before, "tls_handshakes"), 0)
                self.assertEqual(self.new_messages(before), [])

    def test_system_trust_store_without_ca_file(self):
        # ca_file empty: the system store, read as a hashed directory (SSL_CERT_DIR here, so
        # the test CA stands in for the system's CAs); verification stays on.
        self.conf = self.write_config(smtp={"ca_file": None})
        hashed = os.path.join(self.tdir, "certs-hashed")
        empty = os.path.join(self.tdir, "certs-empty")
        os.makedirs(hashed)
        os.makedirs(empty)
        ca = os.path.join(self.env.certs, "ca.crt")
        h = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", ca],
                           capture_output=True, text=True, check=True).stdout.strip()
        os.symlink(ca, os.path.join(hashed, h + ".0"))
        base = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_DIR", "SSL_CERT_FILE")}
        with self.subTest("hashed directory trusts the CA"):
            before = self.snapshot()
            res = self.deliver(env=dict(base, SSL_CERT_DIR=hashed))
            self.assert_delivered(res)
            self.assertEqual(len(self.new_messages(before)), 1)
        with self.subTest("CA not in the store: refused"):
            before = self.snapshot()
            res = self.deliver(env=dict(base, SSL_CERT_DIR=empty))
            self.assert_deferred(res)
            self.assertIn("certificate verify failed", res.line, res)
            self.assertEqual(self.delta(before, "auth_attempts"), 0)
            self.assertEqual(self.new_messages(before), [])
        with self.subTest("SSL_CERT_FILE is honoured"):
            before = self.snapshot()
            res = self.deliver(env=dict(base, SSL_CERT_DIR=empty, SSL_CERT_FILE=ca))
            self.assert_delivered(res)
            self.assertEqual(len(self.new_messages(before)), 1)

    def test_control_characters_in_addresses_send_nothing(self):
        cases = [("sender", "noreply@contoso.com\r\nRCPT TO:<evil@example.org>", ("bob@example.org",)),
                 ("rcpt", MAILBOX, ("bob@example.org\r\nRSET",)),
                 ("rcpt_ctl", MAILBOX, ("bo\x01b@example.org",)),
                 ("rcpt_second", MAILBOX, ("ok@example.org", "b\tad@example.org\nDATA"))]
        for name, sender, rcpts in cases:
            with self.subTest(name):
                before = self.snapshot()
                res = self.deliver(sender=sender, rcpts=rcpts)
                self.assertNotEqual(res.rc, 0, res)
                self.assertEqual(self.delta(before, "mail_commands"), 0, res)
                self.assertEqual(self.delta(before, "rcpt_commands"), 0, res)
                self.assertEqual(self.new_messages(before), [])


class Tokens(TransportTestBase):
    def test_revoked_token_one_refresh_then_delivered(self):
        self.assert_delivered(self.deliver())
        self.env.revoke("--seen")
        before = self.snapshot()
        res = self.deliver()
        self.assert_delivered(res)
        self.assertEqual(self.env.entra_token_requests() - before["entra"], 1)
        self.assertEqual(self.delta(before, "auth_failed"), 1)
        self.assertEqual(len(self.new_messages(before)), 1)

    def test_auth_535_after_forced_refresh_defers(self):
        self.assert_delivered(self.deliver())  # warm cache
        self.env.set_faults([{"stage": "auth", "reply": "535 5.7.3 Authentication unsuccessful"}])
        before = self.snapshot()
        res = self.deliver()
        self.assert_deferred(res, dsn="4.7.3")
        self.assertEqual(self.env.entra_token_requests() - before["entra"], 1)
        self.assertEqual(self.delta(before, "auth_attempts"), 2)

    # The second delivery must not ask Entra again, nor connect: the cache
    # dropped the refused token and its backoff applies (TokenCache::reject()).
    def test_persistent_535_backs_off_without_token_requests(self):
        self.assert_delivered(self.deliver())  # warm cache
        self.env.set_faults([{"stage": "auth", "reply": "535 5.7.3 Authentication unsuccessful"}])
        first = self.deliver()
        self.assert_deferred(first, dsn="4.7.3")
        before = self.snapshot()
        res = self.deliver()
        self.assert_deferred(res, dsn="4.7.0")
        self.assertIn("535", res.line)
        self.assertEqual(self.env.entra_token_requests() - before["entra"], 0, res)
        self.assertEqual(self.delta(before, "auth_attempts"), 0, res)

    def test_cold_cache_30_concurrent_one_token_request(self):
        self.env.set_o365_config({"max_connections_per_mailbox": 100})
        before = self.snapshot()
        results = [None] * 30

        def one(i):
            argv = self.argv(rcpts=("r%d@example.org" % i,), qid="Q%02d" % i)
            p = subprocess.run(argv, input=SIMPLE, capture_output=True, timeout=120)
            results[i] = Result(argv, p, 0)
        ts = [threading.Thread(target=one, args=(i,)) for i in range(30)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for r in results:
            self.check_output_contract(r)
            self.assert_delivered(r)
        self.assertEqual(self.env.entra_token_requests() - before["entra"], 1)
        self.assertEqual(len(self.new_messages(before)), 30)

    def test_concurrency_limit_defers_never_bounces(self):
        self.assert_delivered(self.deliver())  # warm cache
        self.env.set_faults([{"stage": "eod", "action": "reply", "delay": 1.5,
                              "reply": "250 2.0.0 OK slow"}])
        before = self.snapshot()
        results = [None] * 8

        def one(i):
            argv = self.argv(rcpts=("c%d@example.org" % i,), qid="C%02d" % i)
            p = subprocess.run(argv, input=SIMPLE, capture_output=True, timeout=120)
            results[i] = Result(argv, p, 0)
        ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        delivered = [r for r in results if r.rc == 0]
        deferred = [r for r in results if r.rc == TEMPFAIL]
        self.assertEqual(len(delivered) + len(deferred), 8, results)
        self.assertGreater(self.delta(before, "concurrency_rejected"), 0)
        for r in deferred:
            self.assertEqual(r.dsn, "4.3.2", r)
        self.assertGreater(len(delivered), 0, results)
        self.assertEqual(len(self.new_messages(before)), len(delivered))


ACCOUNT_LEVEL = [
    ("auth", "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
             "for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
     "4.7.139"),
    ("auth", "432 4.3.2 Concurrent connections limit exceeded. Visit "
             "https://aka.ms/concurrent_sending for more information.", "4.3.2"),
    ("mail", "550 5.1.8 Access denied, bad outbound sender", "4.1.8"),
    ("eod", "550 5.1.8 Access denied, bad outbound sender", "4.1.8"),
    ("eod", "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed "
            "to process message due to a permanent exception", "4.2.0"),
    ("eod", "550 5.2.251 Mailbox full; blocked for a while", "4.2.251"),
    ("eod", "550 5.2.252 Temporarily blocked after repeated SendAs errors", "4.2.252"),
    ("eod", "550 5.2.253 Invalid licence; blocked for a while", "4.2.253"),
    ("eod", "550 5.2.254 Too many recipients; blocked for a while", "4.2.254"),
    ("mail", "550 5.2.255 Invalid recipients; blocked for a while", "4.2.255"),
    ("mail", "530 5.7.57 Client not authenticated to send mail", "4.7.57"),
    # the sending mailbox's Sent Items are full (O365-FACTS): the account's problem
    ("eod", "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException."
            "MapiExceptionQuotaExceeded; Failed to process message due to a permanent exception",
     "4.2.2"),
]


class AccountLevel(TransportTestBase):
    def test_account_level_replies_defer_never_bounce(self):
        for stage, reply, dsn in ACCOUNT_LEVEL:
            with self.subTest(stage=stage, reply=reply[:20]):
                self.env.set_faults([{"stage": stage, "reply": reply}])
                before = self.snapshot()
                res = self.deliver()
                self.assert_deferred(res, dsn=dsn)
                self.assertIn(reply[4:30], res.line)
                self.assertEqual(self.new_messages(before), [])

    def test_send_as_denied_bounces(self):
        # The relay's account allows the sender; the mailbox has no Send As right.
        conf = self.write_config(account={"senders": "noreply@contoso.com, boss@contoso.com"})
        before = self.snapshot()
        res = self.deliver(conf=conf, sender="boss@contoso.com",
                           msg=SIMPLE.replace(b"From: noreply@", b"From: boss@"))
        self.assert_permanent(res, dsn="5.2.252", text="SendAsDenied")
        self.assertEqual(self.new_messages(before), [])

    def test_recipient_unknown_bounces_67(self):
        self.env.set_faults([{"stage": "rcpt", "rcpt": "gone@example.org",
                              "reply": "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"}])
        res = self.deliver(rcpts=("gone@example.org",))
        self.assert_permanent(res, dsn="5.1.1", rc=67, text="RecipNotFound")

    def test_one_of_several_recipients_refused_defers_all_or_nothing(self):
        self.env.set_faults([{"stage": "rcpt", "rcpt": "gone@example.org",
                              "reply": "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"}])
        before = self.snapshot()
        res = self.deliver(rcpts=("ok@example.org", "gone@example.org"))
        # the one exit status covers every recipient: bouncing would bounce ok@ too
        self.assertNotEqual(res.rc, 0, res)
        if res.rc == TEMPFAIL:
            self.assertEqual(self.new_messages(before), [])


class NullSender(TransportTestBase):
    BOUNCE = (b"From: MAILER-DAEMON@relay.test (Mail Delivery System)\n"
              b"To: bob@example.org\nSubject: Undelivered Mail Returned to Sender\n\nbounce\n")

    def test_rewrite_to_account_mailbox(self):
        before = self.snapshot()
        res = self.deliver(sender="", msg=self.BOUNCE)
        self.assert_delivered(res)
        env, body = self.new_messages(before)[0]
        self.assertEqual(env["mail_from"], MAILBOX)
        self.assertEqual(env["header_from"], [MAILBOX])
        head = body.split(b"\r\n\r\n", 1)[0]
        froms = [l for l in head.split(b"\r\n") if l.lower().startswith(b"from:")]
        self.assertEqual(len(froms), 1, head)
        self.assertIn(b"Mail Delivery System", froms[0])
        self.assertIn(b"noreply@contoso.com", froms[0])
        self.assertNotIn(b"MAILER-DAEMON", froms[0])

    def test_reject_is_permanent_and_sends_nothing(self):
        conf = self.write_config(policy={"null_sender": "reject", "null_sender_account": None})
        before = self.snapshot()
        res = self.deliver(sender="", msg=self.BOUNCE, conf=conf)
        self.assert_permanent(res, dsn="5.7.1")
        self.assertEqual(self.delta(before, "mail_commands"), 0)


class Timeouts(TransportTestBase):
    def test_deadline_bounds_everything(self):
        conf = self.write_config(smtp={"command_timeout": 30, "data_timeout": 30, "deadline": 3})
        self.env.set_faults([{"stage": "eod", "action": "stall"}])
        before = self.snapshot()
        res = self.deliver(conf=conf)
        self.assert_deferred(res)
        self.assertLess(res.elapsed, 10, res)
        self.assertEqual(self.new_messages(before), [])

    def test_connection_refused_defers(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        conf = self.write_config(smtp={"port": port})
        res = self.deliver(conf=conf)
        self.assert_deferred(res)


class ConnectStall(TransportTestBase):
    def test_connect_stall_defers_after_connect_timeout(self):
        # A listener whose accept queue is full: the kernel drops further SYNs, so
        # connect() neither succeeds nor fails (a black hole on loopback).
        import select
        import socket
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(0)
        port = lsn.getsockname()[1]
        held = []
        try:
            for _ in range(8):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                held.append(c)
                if not select.select([], [c], [], 0.5)[1]:
                    break  # this one hangs: the queue is full
            else:
                self.skipTest("could not fill the listen queue: no black hole here")
            conf = self.write_config(smtp={"port": port, "connect_timeout": 2},
                                     name="blackhole.conf")
            res = self.deliver(conf=conf)
            self.assert_deferred(res)
            self.assertGreaterEqual(res.elapsed, 1.5, res)  # it waited for connect_timeout
            self.assertLess(res.elapsed, 10, res)
        finally:
            for c in held:
                c.close()
            lsn.close()


class EntraFaults(TransportTestBase):
    """The token endpoint fails: deferred with the reason, bounded by the deadline."""

    def test_token_endpoint_down_defers_470(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        conf = self.write_config(entra={"authority": "https://127.0.0.1:%d" % port},
                                 name="entra-down.conf")
        before = self.snapshot()
        res = self.deliver(conf=conf)
        self.assert_deferred(res, dsn="4.7.0")
        self.assertEqual(self.delta(before, "auth_attempts"), 0, res)
        self.assertEqual(self.new_messages(before), [])
        # the failure is recorded: the next delivery defers at once with the reason
        again = self.deliver(conf=conf)
        self.assert_deferred(again, dsn="4.7.0")
        self.assertLess(again.elapsed, 5, again)
        self.assertEqual(self.delta(before, "connections"), 0, again)

    def test_token_endpoint_slow_bounded_by_deadline(self):
        # Entra answers after 12 s; http_timeout is 10 s; the [smtp] deadline (5 s)
        # bounds the wait for the token (a real defect once: it took 12.2 s).
        self.env.set_entra_faults([{"kind": "slow", "delay": 12}])
        conf = self.write_config(smtp={"deadline": 5}, name="deadline5.conf")
        before = self.snapshot()
        res = self.deliver(conf=conf)
        self.assert_deferred(res)
        self.assertLessEqual(res.elapsed, 7, res)
        self.assertEqual(self.delta(before, "auth_attempts"), 0, res)
        self.assertEqual(self.new_messages(before), [])

    def ctl_bin(self):
        path = os.path.join(os.path.dirname(os.path.dirname(BIN)), "ctl", "o365relayctl")
        if not os.access(path, os.X_OK):
            self.skipTest("o365relayctl not built next to the transport: %s" % path)
        return path

    def test_invalid_grant_for_delegated_account_defers(self):
        ctl = self.ctl_bin()
        user = "user@contoso.com"
        self.env.set_entra_config({
            "clients": {harness.CLIENT_ID: {
                "certificate": os.path.join(self.env.certs, "app.crt"),
                "secret": self.env.ENTRA_SECRET, "public": True}},
            "device_code": {"interval": 1, "expires_in": 60, "polls": [],
                            "outcome": "approve", "mailbox": user}})
        conf = self.write_config(relay={"user": "root"},  # o365relayctl drops to [relay] user
                                 extra="[account user]\nmailbox = %s\nsenders = %s\n"
                                       "flow = delegated\n" % (user, user), name="user.conf")
        p = subprocess.run([ctl, "-c", conf, "login", "user"], capture_output=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p)
        # the access token from the login is about to expire: a refresh is due
        entry_path = os.path.join(self.state_dir, "tokens", "user.json")
        import json
        with open(entry_path) as f:
            entry = json.load(f)
        self.assertTrue(entry.get("refresh_token"))
        entry["expires_at"] = int(time.time()) + 30
        tmp = entry_path + ".test"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(entry, f)
        os.replace(tmp, entry_path)
        # the refresh token was revoked (AADSTS70008: invalid_grant)
        self.env.set_entra_faults([{"kind": "aadsts", "code": 70008, "grant": "refresh_token"}])
        before = self.snapshot()
        res = self.deliver(conf=conf, sender=user, nexthop="user",
                           msg=SIMPLE.replace(b"From: noreply@contoso.com", b"From: " +
                                              user.encode()))
        self.assert_deferred(res)
        self.assertIn("login", res.line, res)
        self.assertEqual(self.delta(before, "auth_attempts"), 0, res)
        self.assertEqual(self.new_messages(before), [])
        self.assertGreaterEqual(self.env.entra_stats().get("faults", {}).get("aadsts", 0), 1)


class LocalFaults(TransportTestBase):
    """Faults of the machine the transport runs on: never a bounce."""

    def test_tokens_dir_writable_by_group_defers_naming_it(self):
        tokens = os.path.join(self.state_dir, "tokens")
        os.makedirs(tokens, mode=0o700)
        os.chmod(tokens, 0o770)
        before = self.snapshot()
        res = self.deliver()
        self.assert_deferred(res)
        self.assertIn(tokens, res.line, res)
        self.assertIn("chmod 700", res.line, res)
        self.assertEqual(self.env.entra_token_requests() - before["entra"], 0, res)
        self.assertEqual(self.new_messages(before), [])
        self.assertEqual(os.stat(tokens).st_mode & 0o777, 0o770)  # refused, not changed

    def mount_tmpfs(self, path, opts):
        os.makedirs(path, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                           capture_output=True, text=True)
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): %s"
                          % p.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", path], capture_output=True)

    @staticmethod
    def fill(directory):
        """Fills the file system of `directory` (a small tmpfs) to the last byte."""
        try:
            with open(os.path.join(directory, "filler"), "wb") as f:
                while True:
                    f.write(b"x" * 4096)
                    f.flush()
        except OSError:
            pass

    def assert_delivered_or_deferred_with_reason(self, res, before):
        self.assertIn(res.rc, (0, TEMPFAIL), "never a bounce: %r" % res)
        if res.rc == 0:
            self.assertEqual(len(self.new_messages(before)), 1, res)
        else:
            self.assertGreater(len(res.line), 10, res)
            self.assertEqual(self.new_messages(before), [], res)

    def test_unwritable_tokens_dir_delivers_or_defers(self):
        tokens = os.path.join(self.state_dir, "tokens")
        os.makedirs(self.state_dir, mode=0o700)
        self.mount_tmpfs(tokens, "size=64k,mode=0700")
        subprocess.run(["mount", "-o", "remount,ro", tokens], check=True)
        before = self.snapshot()
        res = self.deliver()
        self.assert_delivered_or_deferred_with_reason(res, before)
        sys.stderr.write("\n  [unwritable tokens/: %s] " % res.line)

    def test_cache_disk_full_delivers_or_defers(self):
        tokens = os.path.join(self.state_dir, "tokens")
        os.makedirs(self.state_dir, mode=0o700)
        self.mount_tmpfs(tokens, "size=16k,mode=0700")
        self.fill(tokens)
        before = self.snapshot()
        res = self.deliver()
        self.assert_delivered_or_deferred_with_reason(res, before)
        sys.stderr.write("\n  [tokens/ full: %s] " % res.line)

    def test_spool_disk_full_defers(self):
        # The transport spools the message in $TMPDIR before MAIL FROM: a full disk
        # there is temporary, and nothing is sent.
        spool = os.path.join(self.tdir, "spool")
        self.mount_tmpfs(spool, "size=16k,mode=0700")
        self.fill(spool)
        before = self.snapshot()
        res = self.deliver(msg=_big_message(256 << 10), env=dict(os.environ, TMPDIR=spool))
        self.assert_deferred(res)
        self.assertIn("No space left on device", res.line, res)
        self.assertEqual(self.delta(before, "mail_commands"), 0, res)
        self.assertEqual(self.new_messages(before), [])

    def test_config_fifo_defers_435_without_blocking(self):
        fifo = os.path.join(self.tdir, "fifo.conf")
        os.mkfifo(fifo)
        res = self.deliver(conf=fifo, timeout=20)
        self.assert_deferred(res, dsn="4.3.5")
        self.assertLess(res.elapsed, 5, res)

    def test_repeated_scalar_key_defers_435_naming_both_lines(self):
        with open(self.conf) as f:
            lines = f.read().splitlines(keepends=True)
        first = next(i for i, l in enumerate(lines) if l.startswith("helo_name ="))
        lines.insert(first + 2, "helo_name = other.test\n")
        with open(self.conf, "w") as f:
            f.writelines(lines)
        before = self.snapshot()
        res = self.deliver()
        self.assert_deferred(res, dsn="4.3.5")
        self.assertIn(str(first + 1), res.line, res)
        self.assertIn(str(first + 3), res.line, res)
        self.assertIn("helo_name", res.line, res)
        self.assertEqual(self.delta(before, "connections"), 0, res)


def main():
    global BIN
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        print("usage: test_transport.py /path/to/o365relay-transport [unittest args]",
              file=sys.stderr)
        sys.exit(2)
    BIN = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
