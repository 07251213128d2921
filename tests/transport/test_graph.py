#!/usr/bin/env python3
"""End-to-end tests of Graph delivery (method = graph) through the REAL
o365relay-transport binary against fake_graph.py + fake_entra.py (and
fake_o365.py for the audience tests).

Usage: test_graph.py /path/to/o365relay-transport [unittest args]

Checks, per docs/design.md section "Graph delivery": every outcome row of the
temporary/permanent table, exactly-once delivery per envelope recipient (Bcc-only
recipients get it, header recipients outside the envelope do not), the 3 MB size
rule, one Graph token request for 20 parallel deliveries on a cold cache, the 429
throttle shared by every process of the account, at most 4 concurrent requests
per mailbox, and that a token only ever goes to the service of its audience.
"""
import base64
import glob
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
import harness  # noqa: E402
from harness import MAILBOX  # noqa: E402
from test_fake_graph import GraphEnv  # noqa: E402

BIN = None  # set from argv in main
from harness import PERMANENT, SIMPLE, TEMPFAIL, Result, normalized  # noqa: E402


class GraphTestBase(unittest.TestCase):
    """Shared fakes for the class; a fresh state dir (cold token cache) per test."""

    @classmethod
    def setUpClass(cls):
        cls.env = GraphEnv("graph")
        cls.env.start_entra_for_graph()
        cls.graph_port = cls.env.start_graph()
        cls.o365_port = cls.env.start_o365()
        cls.seq = 0

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        type(self).seq += 1
        self.env.set_graph_faults([])
        self.env.set_graph_config({})
        self.tdir = os.path.join(self.env.dir, "t%03d" % self.seq)
        os.makedirs(self.tdir)
        self.state_dir = os.path.join(self.tdir, "state")
        self.log = os.path.join(self.tdir, "transport.log")
        self.conf = self.write_config()

    def tearDown(self):
        text = self.log_text()
        for tok in self.env.issued_tokens():
            self.assertNotIn(tok, text, "an access token is in the transport log")
        self.assertNotIn("Bearer ", text)

    def write_config(self, account=None, graph=None, smtp=None):
        s = {"host": "localhost", "port": self.o365_port, "helo_name": "relay.test",
             "ca_file": os.path.join(self.env.certs, "ca.crt"), "connect_timeout": 3,
             "command_timeout": 2, "data_timeout": 3, "deadline": 60}
        s.update(smtp or {})
        g = {"endpoint": "https://127.0.0.1:%d" % self.graph_port,
             "ca_file": os.path.join(self.env.certs, "ca.crt"), "http_timeout": 10}
        g.update(graph or {})
        a = {"mailbox": MAILBOX, "senders": "noreply@contoso.com, @apps.contoso.com",
             "method": "graph"}
        a.update(account or {})

        def sect(name, d):
            return "[%s]\n" % name + "".join(
                "%s = %s\n" % kv for kv in d.items() if kv[1] is not None)
        text = (sect("relay", {"state_dir": self.state_dir, "log": "file:" + self.log,
                               "log_level": "debug"})
                + sect("smtp", s) + sect("entra", self.env.entra_settings()) + sect("graph", g)
                + sect("account noreply", a)
                + sect("policy", {"null_sender": "rewrite", "null_sender_account": "noreply"}))
        path = os.path.join(self.tdir, "o365relay.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def deliver(self, msg=SIMPLE, rcpts=("bob@example.org",), sender=MAILBOX, nexthop="noreply",
                qid="4F2A31C2D", timeout=90):
        argv = [BIN, "-c", self.conf, "-f", sender, "-q", qid, "-n", nexthop, "--", *rcpts]
        t0 = time.time()
        p = subprocess.run(argv, input=msg, capture_output=True, timeout=timeout)
        res = Result(None, p, time.time() - t0)
        # pipe(8) contract: one line, code agrees with the exit status, nothing on stderr.
        self.assertEqual(res.out.count(b"\n"), 1, res)
        self.assertRegex(res.line, r"^[245]\.\d{1,3}\.\d{1,3} \S", res)
        want = {0: "2"}.get(res.rc, "4" if res.rc == TEMPFAIL else "5")
        self.assertEqual(res.dsn[0], want, res)
        self.assertEqual(res.err, b"", res)
        return res

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def requests(self):
        try:
            return self.env.graph_stats()["requests"]
        except FileNotFoundError:
            return 0

    def graph_token_requests(self):
        return self.env.entra_token_requests()

    def copies(self, rcpt):
        return len(self.env.received(rcpt))

    def live_drafts(self):
        try:
            with open(os.path.join(self.env.graph_state, "drafts.json")) as f:
                return sum(len(v) for v in json.load(f).values())
        except FileNotFoundError:
            return 0


class Routes(GraphTestBase):
    def test_sendmail_when_headers_name_the_envelope(self):
        before = len(self.env.deliveries())
        res = self.deliver()
        self.assertEqual(res.rc, 0, res)
        self.assertEqual(res.line, "2.0.0 host 127.0.0.1[127.0.0.1]:%d said: HTTP 202 Accepted "
                         "(in reply to sendMail)" % self.graph_port)
        d = self.env.deliveries()[before:]
        self.assertEqual(len(d), 1)
        self.assertEqual(d[0]["method"], "sendMail")
        # The message exactly as the SMTP path sends it (CRLF, no dot-stuffing).
        self.assertEqual(base64.b64decode(d[0]["mime_b64"]), normalized(SIMPLE))
        self.assertIn("relay=127.0.0.1[127.0.0.1]:%d" % self.graph_port, self.log_text())
        self.assertIn("status=sent", self.log_text())
        # The Graph token lives next to the SMTP entry, under <account>+graph.
        self.assertTrue(os.path.exists(os.path.join(self.state_dir, "tokens",
                                                    "noreply+graph.json")))
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "tokens", "noreply.json")))

    def test_dots_are_not_stuffed(self):
        msg = (b"From: noreply@contoso.com\nTo: bob@example.org\nSubject: dots\n\n"
               b".leading\n..two\n.\nend\n")
        before = len(self.env.deliveries())
        res = self.deliver(msg)
        self.assertEqual(res.rc, 0, res)
        d = self.env.deliveries()[before:]
        self.assertEqual(base64.b64decode(d[0]["mime_b64"]), normalized(msg))

    def test_exactly_the_envelope_recipients_once(self):
        msg = (b"From: noreply@contoso.com\nTo: to1@example.org, other@example.org\n"
               b"Cc: cc1@example.org\nBcc: hidden@example.org\nSubject: t\n\nbody\n")
        rcpts = ("to1@example.org", "cc1@example.org", "hidden@example.org",
                 "bcconly@example.org")
        res = self.deliver(msg, rcpts=rcpts)
        self.assertEqual(res.rc, 0, res)
        self.assertIn("(in reply to draft send)", res.line)
        for r in rcpts:
            self.assertEqual(self.copies(r), 1, r)
        # A header recipient who is not an envelope recipient does not get it.
        self.assertEqual(self.copies("other@example.org"), 0)
        self.assertEqual(self.live_drafts(), 0)
        # Bcc stays hidden from the others.
        self.assertNotIn(b"hidden@example.org", self.env.received("to1@example.org")[0])

    def test_bcc_recipient_of_this_delivery_only(self):
        # Postfix splits the message: this delivery is for the Bcc recipient only.
        msg = (b"From: noreply@contoso.com\nTo: bob@example.org\nBcc: secret@example.org\n"
               b"Subject: t\n\nbody\n")
        bob = self.copies("bob@example.org")
        res = self.deliver(msg, rcpts=("secret@example.org",))
        self.assertEqual(res.rc, 0, res)
        self.assertEqual(self.copies("secret@example.org"), 1)
        self.assertEqual(self.copies("bob@example.org"), bob)

    def test_null_sender_from_is_rewritten(self):
        msg = (b"From: MAILER-DAEMON@relay.test (Mail Delivery System)\nTo: bob@example.org\n"
               b"Subject: bounce\n\nbody\n")
        before = len(self.env.deliveries())
        res = self.deliver(msg, sender="", nexthop="example.org")
        self.assertEqual(res.rc, 0, res)
        d = self.env.deliveries()[before:]
        self.assertIn(b"noreply@contoso.com", base64.b64decode(d[0]["mime_b64"]).split(b"\r\n\r\n")[0])


class Outcomes(GraphTestBase):
    """Every row of the Graph part of the temporary/permanent table."""

    def fresh_state(self, i):
        self.state_dir = os.path.join(self.tdir, "state%d" % i)
        self.conf = self.write_config()

    def run_row(self, res, rc, dsn, text=None):
        self.assertEqual(res.rc, rc, res)
        self.assertEqual(res.dsn, dsn, res)
        if text:
            self.assertIn(text, res.line, res)

    def test_account_level_refusals_defer_with_the_fix(self):
        rows = [("scoped@contoso.com", "4.7.0", "HTTP 403 ErrorAccessDenied: Access is denied"),
                ("ghost@contoso.com", "4.7.0", "HTTP 404 ErrorInvalidUser"),
                ("onprem@contoso.com", "4.7.0", "HTTP 404 MailboxNotEnabledForRESTAPI"),
                ("full@contoso.com", "4.2.2", "ErrorQuotaExceeded")]
        for mailbox, dsn, text in rows:
            with self.subTest(mailbox=mailbox):
                self.conf = self.write_config(account={"mailbox": mailbox})
                res = self.deliver()
                self.run_row(res, TEMPFAIL, dsn, text)
                self.assertIn("o365relayctl check" if "Quota" not in text else "quota", res.line)
                self.assertIn("host 127.0.0.1[127.0.0.1]:%d said: HTTP" % self.graph_port,
                              res.line)

    def test_send_as_denied_is_permanent(self):
        msg = b"From: ceo@contoso.com\nTo: bob@example.org\nSubject: t\n\nx\n"
        res = self.deliver(msg)
        self.run_row(res, 69, "5.7.60", "HTTP 403 ErrorSendAsDenied")

    def test_fault_rows(self):
        rows = [
            ({"route": "sendMail", "status": 400, "code": "ErrorInvalidRecipients",
              "message": "At least one recipient is not valid."}, 67, "5.1.3", None),
            ({"route": "sendMail", "status": 400, "code": "ErrorMimeContentInvalidBase64String",
              "message": "Invalid base64 string for MIME content."}, 65, "5.6.0", None),
            ({"route": "sendMail", "status": 413, "code": "ErrorRequestEntityTooLarge"},
             65, "5.3.4", None),
            ({"route": "sendMail", "status": 503, "code": "ServiceUnavailable"},
             TEMPFAIL, "4.4.0", None),
            ({"route": "sendMail", "status": 500, "body": "<html>oops</html>"},
             TEMPFAIL, "4.4.0", "oops"),
            ({"route": "sendMail", "status": 401, "code": "InvalidAuthenticationToken"},
             TEMPFAIL, "4.7.0", "again after a forced token refresh"),
            ({"route": "sendMail", "action": "close", "after": True},
             TEMPFAIL, "4.4.2", "may have been sent"),
            ({"route": "sendMail", "action": "close_before_body"}, TEMPFAIL, "4.4.2", None),
        ]
        for i, (rule, rc, dsn, text) in enumerate(rows):
            with self.subTest(rule=rule):
                self.fresh_state(i)  # a persistent 401 leaves the account in backoff
                self.env.set_graph_faults([rule])
                res = self.deliver()
                self.run_row(res, rc, dsn, text)

    def test_several_recipients_invalid_recipient_defers(self):
        self.env.set_graph_faults([{"status": 400, "code": "ErrorInvalidRecipients"}])
        msg = b"From: noreply@contoso.com\nTo: a@example.org, b@example.org\nSubject: t\n\nx\n"
        res = self.deliver(msg, rcpts=("a@example.org", "b@example.org"))
        self.run_row(res, TEMPFAIL, "4.1.3", "o365_destination_recipient_limit")

    def test_401_once_refreshes_the_token_and_delivers(self):
        self.env.set_graph_faults([{"route": "sendMail", "status": 401,
                                    "code": "InvalidAuthenticationToken", "count": 1}])
        before = self.graph_token_requests()
        res = self.deliver()
        self.assertEqual(res.rc, 0, res)
        self.assertEqual(self.graph_token_requests() - before, 2)  # the first and the refresh
        self.assertIn("refreshing it once", self.log_text())

    def test_timeout_defers(self):
        self.conf = self.write_config(graph={"http_timeout": 2})
        self.env.set_graph_faults([{"route": "sendMail", "action": "stall"}])
        res = self.deliver()
        self.run_row(res, TEMPFAIL, "4.4.2", "timed out")
        self.assertLess(res.elapsed, 15)

    def test_draft_failure_deletes_the_draft(self):
        self.env.set_graph_faults([{"route": "sendDraft", "status": 503,
                                    "code": "ServiceUnavailable"}])
        msg = b"From: noreply@contoso.com\nTo: x@example.org\nSubject: t\n\nx\n"
        res = self.deliver(msg, rcpts=("y@example.org",))
        self.run_row(res, TEMPFAIL, "4.4.0", "(in reply to draft send)")
        self.assertEqual(self.copies("y@example.org"), 0)
        self.assertEqual(self.live_drafts(), 0)
        self.assertIn("deleted the unsent draft", self.log_text())

    def test_unreachable_endpoint_defers(self):
        self.conf = self.write_config(graph={"endpoint": "https://127.0.0.1:1"})
        res = self.deliver()
        self.run_row(res, TEMPFAIL, "4.4.1")


class Size(GraphTestBase):
    def test_over_3mb_is_refused_permanently_without_a_request(self):
        body = (b"x" * 998 + b"\n") * 3300  # about 3.3 MB
        msg = b"From: noreply@contoso.com\nTo: bob@example.org\nSubject: big\n\n" + body
        reqs, toks = self.requests(), self.graph_token_requests()
        res = self.deliver(msg)
        self.assertEqual(res.rc, 65, res)
        self.assertEqual(res.dsn, "5.3.4", res)
        self.assertIn("larger than the 3 MB Microsoft Graph accepts", res.line)
        self.assertIn("use method = smtp", res.line)
        self.assertEqual(self.requests(), reqs)
        self.assertEqual(self.graph_token_requests(), toks)

    def test_just_under_3mb_is_delivered(self):
        head = b"From: noreply@contoso.com\nTo: bob@example.org\nSubject: big\n\n"
        line = b"y" * 998 + b"\r\n"
        n = (3145728 - len(normalized(head))) // len(line)
        msg = normalized(head) + line * n
        self.assertLessEqual(len(msg), 3145728)
        res = self.deliver(msg)
        self.assertEqual(res.rc, 0, res)


class Parallel(GraphTestBase):
    def run_parallel(self, n, **kw):
        results = [None] * n

        def one(i):
            results[i] = self.deliver(qid="Q%04d" % i, **kw)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def test_20_parallel_cold_cache_one_token_request(self):
        before = self.graph_token_requests()
        results = self.run_parallel(20)
        for r in results:
            self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.graph_token_requests() - before, 1)

    def test_at_most_4_concurrent_requests_per_mailbox(self):
        self.env.set_graph_faults([{"route": "sendMail", "action": "delay", "delay": 0.5}])
        rejected = self.env.graph_stats().get("concurrency_rejected", 0)
        results = self.run_parallel(10)
        for r in results:
            self.assertEqual(r.rc, 0, r)
        st = self.env.graph_stats()
        self.assertLessEqual(st["max_concurrency"][MAILBOX], 4)
        self.assertEqual(st["concurrency_rejected"], rejected)

    def test_429_stops_every_process_of_the_account(self):
        self.env.set_graph_faults([{"route": "sendMail", "status": 429,
                                    "code": "ApplicationThrottled", "retry_after": 3,
                                    "count": 1}])
        res = self.deliver()
        t429 = time.time()
        self.assertEqual(res.rc, TEMPFAIL, res)
        self.assertEqual(res.dsn, "4.7.0", res)
        self.assertTrue(os.path.exists(os.path.join(self.state_dir, "graph",
                                                    "noreply.throttle")))
        reqs = self.requests()
        results = self.run_parallel(5)
        for r in results:
            self.assertEqual(r.rc, TEMPFAIL, r)
            self.assertIn("throttles account noreply", r.line)
        self.assertEqual(self.requests(), reqs, "a request reached Graph during Retry-After")
        time.sleep(max(0, t429 + 3.5 - time.time()))
        res = self.deliver()
        self.assertEqual(res.rc, 0, res)


class Audiences(GraphTestBase):
    def test_a_token_only_goes_to_its_service(self):
        # SMTP first: the account's SMTP entry.
        self.conf = self.write_config(account={"method": "smtp"})
        before_o365 = self.env.stats()
        res = self.deliver()
        self.assertEqual(res.rc, 0, res)
        self.assertTrue(self.entry("noreply.json")["access_token"])
        # Then Graph with the SMTP entry warm: Graph must get its own token.
        self.conf = self.write_config()
        before_graph = self.env.graph_stats()
        res = self.deliver()
        self.assertEqual(res.rc, 0, res)
        after_graph = self.env.graph_stats()
        self.assertEqual(after_graph["by_status"].get("401", 0),
                         before_graph["by_status"].get("401", 0), "an SMTP token went to Graph")
        # And back to SMTP: the Graph token never reaches Office 365.
        self.conf = self.write_config(account={"method": "smtp"})
        res = self.deliver()
        self.assertEqual(res.rc, 0, res)
        self.assertEqual(self.env.stats()["auth_failed"], before_o365["auth_failed"],
                         "a Graph token went to Office 365")
        smtp_entry = self.entry("noreply.json")
        graph_entry = self.entry("noreply+graph.json")
        self.assertNotEqual(smtp_entry["access_token"], graph_entry["access_token"])
        self.assertIn("outlook.office365.com", self.scope_of(smtp_entry["access_token"]))
        self.assertIn("graph.microsoft.com", self.scope_of(graph_entry["access_token"]))

    def entry(self, name):
        with open(os.path.join(self.state_dir, "tokens", name)) as f:
            return json.load(f)

    def scope_of(self, token):
        claims = harness.fake_tokens.verify(self.env.key, token)
        self.assertIsNotNone(claims)
        return claims.get("scp", "")


if __name__ == "__main__":
    BIN = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
