#!/usr/bin/env python3
"""Self-test of tests/fakes/fake_o365.py with python's smtplib + ssl and a raw
client: it must behave like smtp.office365.com (O365-FACTS.md) and its faults
must do what README.md says, or the transport tests prove nothing."""
import base64
import json
import os
import smtplib
import socket
import ssl
import sys
import threading
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MAILBOX, RawClient  # noqa: E402

PLAIN_EXTS = ["SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS",
              "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
TLS_EXTS = ["SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "AUTH LOGIN XOAUTH2",
            "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
MSG = b"From: noreply@contoso.com\r\nTo: bob@example.org\r\nSubject: t\r\n\r\nhello\r\n"


class FakeO365Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = harness.Env("fakeo365")
        cls.port = cls.env.start_o365()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.env.set_faults([])
        self.env.set_o365_config({})
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    # --- helpers ---------------------------------------------------------------
    def raw(self, timeout=10.0):
        c = RawClient(self.port, timeout)
        self.clients.append(c)
        return c

    def authed(self, user=MAILBOX, token=None):
        c = self.raw()
        self.assertEqual(c.reply()[0], 220)
        c.cmd("EHLO client.test")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO client.test")
        code, text = c.xoauth2(user, token or self.env.token()["token"])
        self.assertEqual(code, 235, text)
        return c

    def smtp(self, token=None, user=MAILBOX):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        s.starttls(context=self.env.client_ctx())
        s.ehlo("client.test")
        tok = token or self.env.token()["token"]
        s.auth("XOAUTH2", lambda challenge=None: "user=%s\x01auth=Bearer %s\x01\x01" % (user, tok),
               initial_response_ok=False)
        return s

    def send_data(self, c, body, frm=MAILBOX, rcpts=("bob@example.org",)):
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % frm)[0], 250)
        for r in rcpts:
            self.assertEqual(c.cmd("RCPT TO:<%s>" % r)[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(body + b".\r\n")
        return c.reply()

    # --- protocol faithfulness ---------------------------------------------------
    def test_greeting_and_ehlo_lists(self):
        c = self.raw()
        code, text = c.reply()
        self.assertEqual(code, 220)
        self.assertRegex(text[0], r"^\S+ Microsoft ESMTP MAIL Service ready at \w{3}, \d")
        code, lines = c.cmd("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertEqual(lines[1:], PLAIN_EXTS)
        c.starttls(self.env.client_ctx())
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        code, lines = c.cmd("EHLO client.test")
        self.assertEqual(lines[1:], TLS_EXTS)

    def test_old_tls_refused(self):
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        ctx = self.env.client_ctx()
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with self.assertRaises((ssl.SSLError, OSError)):
            c.starttls(ctx)

    def test_auth_before_tls_refused_and_flagged(self):
        before = self.env.stats()["auth_before_tls"]
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        self.assertEqual(c.cmd("AUTH XOAUTH2")[0], 504)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % MAILBOX)[0], 530)
        self.assertEqual(self.env.stats()["auth_before_tls"], before + 1)
        self.assertGreaterEqual(self.env.stats()["mail_before_tls"], 1)

    def test_ehlo_required_after_starttls(self):
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        self.assertEqual(c.xoauth2(MAILBOX, self.env.token()["token"])[0], 503)

    def test_smtplib_send_xoauth2(self):
        s = self.smtp()
        n = len(self.env.messages())
        s.sendmail(MAILBOX, ["bob@example.org", "carol@example.org"], MSG)
        s.quit()
        env, body = self.env.messages()[n]
        self.assertEqual(env["rcpt_to"], ["bob@example.org", "carol@example.org"])
        self.assertEqual(env["mailbox"], MAILBOX)
        self.assertEqual(body, MSG)

    def test_inline_initial_response(self):
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO x")
        self.assertEqual(c.xoauth2(MAILBOX, self.env.token()["token"], inline=True),
                         (235, ["2.7.0 Authentication successful"]))

    def test_bad_tokens(self):
        good = self.env.token()["token"]
        cases = {
            "tampered": good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),
            "expired": self.env.token(lifetime=-10)["token"],
            "tenant": self.env.token(tenant="fabrikam.onmicrosoft.com")["token"],
            "app": self.env.token(client_id="99999999-0000-0000-0000-000000000000")["token"],
            "scope": self.env.token(scope="https://graph.microsoft.com/.default")["token"],
            "delegated other": self.env.token(scope="SMTP.Send", mailbox="x@contoso.com")["token"],
        }
        for name, tok in cases.items():
            with self.subTest(name):
                c = self.raw()
                c.reply()
                c.cmd("EHLO x")
                c.starttls(self.env.client_ctx())
                c.cmd("EHLO x")
                code, text = c.xoauth2(MAILBOX, tok)
                self.assertEqual(code, 535)
                self.assertTrue(text[0].startswith("5.7.3 Authentication unsuccessful"), text)
                self.assertEqual(c.cmd("MAIL FROM:<%s>" % MAILBOX),
                                 (530, ["5.7.57 Client not authenticated to send mail. "
                                        "[FAKE01MB0001.prod.outlook.office365.test]"]))
        # a delegated token of the right mailbox is fine
        self.authed(token=self.env.token(scope="https://outlook.office.com/SMTP.Send "
                                         "offline_access", mailbox=MAILBOX)["token"])

    def test_unknown_mailbox_and_smtp_auth_disabled(self):
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO x")
        self.assertEqual(c.xoauth2("ghost@contoso.com", self.env.token()["token"])[0], 535)
        self.env.set_o365_config({}, {MAILBOX: {"smtp_auth": False}})
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO x")
        code, text = c.xoauth2(MAILBOX, self.env.token()["token"])
        self.assertEqual(code, 535)
        self.assertIn("5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled",
                      text[0])

    def test_revocation(self):
        t1 = self.env.token()
        self.authed(token=t1["token"]).cmd("QUIT")
        self.env.revoke("--seen")
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO x")
        self.assertEqual(c.xoauth2(MAILBOX, t1["token"])[0], 535)
        self.authed(token=self.env.token()["token"])  # a new token works
        t3 = self.env.token()
        self.env.revoke("--jti", t3["claims"]["jti"])
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO x")
        self.assertEqual(c.xoauth2(MAILBOX, t3["token"])[0], 535)

    def test_auth_failure_334_mode(self):
        self.env.set_o365_config({"auth_failure_334": True})
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO x")
        code, text = c.xoauth2(MAILBOX, self.env.token(lifetime=-5)["token"])
        self.assertEqual(code, 334)
        self.assertEqual(json.loads(base64.b64decode(text[0]))["status"], "401")
        self.assertEqual(c.cmd("")[0], 535)

    def test_byte_exact_dot_unstuffing(self):
        c = self.authed()
        body = (b"From: noreply@contoso.com\r\n\r\n..starts with dot\r\n...two\r\n"
                b"lone\rCR\r\n8bit \xe9\xff\r\n" + b"x" * 5000 + b"\r\n")
        code, text = self.send_data(c, body)
        self.assertEqual(code, 250)
        self.assertRegex(text[0], r"^2\.0\.0 OK <[^>]+> \[Hostname=\S+\]$")
        env, got = self.env.messages()[-1]
        self.assertEqual(got, body.replace(b"\r\n..", b"\r\n."))
        self.assertEqual(env["bare_cr"], 1)
        self.assertEqual(env["bare_lf"], 0)

    def test_pipelining_and_batched_replies(self):
        c = self.authed()
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
               % MAILBOX)
        self.assertEqual([c.reply()[0] for _ in range(4)], [250, 250, 250, 354])
        self.assertEqual(c.cmd("From: noreply@contoso.com\r\n\r\nx\r\n.")[0], 250)
        self.assertEqual(self.env.messages()[-1][0]["rcpt_to"], ["a@example.org", "b@example.org"])

    def test_bdat(self):
        c = self.authed()
        c.cmd("MAIL FROM:<%s> BODY=BINARYMIME" % MAILBOX)
        c.cmd("RCPT TO:<bob@example.org>")
        part1, part2 = b"From: noreply@contoso.com\r\n\r\n.x\r\n", b"\x00bin\r\n.\r\n"
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        self.assertEqual(c.reply()[0], 250)
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        self.assertEqual(c.reply()[0], 250)
        env, got = self.env.messages()[-1]
        self.assertEqual(got, part1 + part2)
        self.assertEqual(env["via"], "BDAT")

    def test_send_as(self):
        c = self.authed()
        code, text = self.send_data(c, b"From: boss@contoso.com\r\n\r\nx\r\n")
        self.assertEqual(code, 554)
        self.assertTrue(text[0].startswith("5.2.252 SendAsDenied; noreply@contoso.com not allowed "
                                           "to send as boss@contoso.com"), text)
        code, text = self.send_data(c, b"From: a@apps.contoso.com\r\n\r\nx\r\n",
                                    frm="boss@contoso.com")
        self.assertEqual(code, 554)
        code, _ = self.send_data(c, b"From: \"Apps\" <b@apps.contoso.com>\r\n\r\nx\r\n",
                                 frm="a@APPS.contoso.com")
        self.assertEqual(code, 250)
        code, _ = self.send_data(c, b"From: MAILER-DAEMON\r\n\r\nx\r\n", frm="")
        self.assertEqual(code, 554)

    def test_concurrency_limit(self):
        held = [self.authed() for _ in range(3)]
        c = self.raw()
        c.reply()
        c.cmd("EHLO x")
        c.starttls(self.env.client_ctx())
        c.cmd("EHLO x")
        code, text = c.xoauth2(MAILBOX, self.env.token()["token"])
        self.assertEqual(code, 432)
        self.assertTrue(text[0].startswith("4.3.2 Concurrent connections limit exceeded"))
        self.authed(user="other@contoso.com")  # another mailbox is not affected
        held[0].cmd("QUIT")
        held[0].close()
        time.sleep(0.2)
        self.authed()

    # --- faults ------------------------------------------------------------------
    def test_reply_fault_once_then_success(self):
        self.env.set_faults([{"stage": "mail", "action": "reply",
                              "reply": "451 4.4.0 fault", "count": 1}])
        c = self.authed()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % MAILBOX), (451, ["4.4.0 fault"]))
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % MAILBOX)[0], 250)

    def test_multiline_reply_and_close(self):
        self.env.set_faults([{"stage": "greeting", "reply": "421-4.3.2 first\n421 4.3.2 last"}])
        c = self.raw()
        self.assertEqual(c.reply(), (421, ["4.3.2 first", "4.3.2 last"]))
        with self.assertRaises((ConnectionError, OSError)):
            c.cmd("EHLO x")

    def test_disconnect_at_each_stage(self):
        for stage in ["greeting", "ehlo", "starttls", "tls", "auth", "mail", "rcpt", "data",
                      "eod", "quit"]:
            with self.subTest(stage):
                self.env.set_faults([{"stage": stage, "action": "disconnect"}])
                n = len(self.env.messages())
                with self.assertRaises((ConnectionError, OSError, ssl.SSLError)):
                    c = self.raw()
                    c.reply()
                    c.cmd("EHLO x")
                    c.starttls(self.env.client_ctx())
                    c.cmd("EHLO x")
                    c.xoauth2(MAILBOX, self.env.token()["token"])
                    self.send_data(c, MSG)
                    c.cmd("QUIT")
                self.assertEqual(len(self.env.messages()), n + (1 if stage == "quit" else 0))

    def test_stall(self):
        self.env.set_faults([{"stage": "data", "action": "stall"}])
        c = self.authed()
        c.sock.settimeout(1.0)
        c.cmd("MAIL FROM:<%s>" % MAILBOX)
        c.cmd("RCPT TO:<bob@example.org>")
        with self.assertRaises(socket.timeout):
            c.cmd("DATA")

    def test_per_recipient_fault(self):
        self.env.set_faults([{"stage": "rcpt", "rcpt": "bad@example.org",
                              "reply": "550 5.1.1 bad: User unknown"}])
        c = self.authed()
        c.cmd("MAIL FROM:<%s>" % MAILBOX)
        self.assertEqual(c.cmd("RCPT TO:<good@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<bad@example.org>")[0], 550)

    def test_no_starttls_and_wrong_certs(self):
        self.env.set_faults([{"stage": "ehlo", "action": "no_starttls"}])
        c = self.raw()
        c.reply()
        self.assertNotIn("STARTTLS", c.cmd("EHLO x")[1])
        for cert in ("wronghost", "rogue"):
            with self.subTest(cert):
                self.env.set_faults([{"stage": "tls", "action": "cert", "cert": cert}])
                with self.assertRaises(ssl.SSLCertVerificationError):
                    self.smtp()
                ok = self.env.client_ctx()
                ok.check_hostname = False
                ok.verify_mode = ssl.CERT_NONE
                c = self.raw()
                c.reply()
                c.cmd("EHLO x")
                c.starttls(ok)
                self.assertEqual(c.sock.getpeercert(binary_form=True) is not None, True)

    def test_slow_replies_and_delay(self):
        self.env.set_faults([{"stage": "greeting", "action": "slow"}])
        s = self.smtp()
        s.sendmail(MAILBOX, ["bob@example.org"], MSG)
        s.quit()
        self.assertTrue(any(e.get("action") == "slow" for e in self.env.events("fault")))

    def test_probability(self):
        self.env.set_faults([{"stage": "mail", "reply": "451 4.3.0 random", "probability": 0.5}])
        c = self.authed()
        codes = []
        for _ in range(200):
            code, _ = c.cmd("MAIL FROM:<%s>" % MAILBOX)
            codes.append(code)
            c.cmd("RSET")
        self.assertTrue(40 < codes.count(451) < 160, codes.count(451))

    def test_faults_reread_per_connection_and_count_reset(self):
        self.env.set_faults([{"stage": "greeting", "reply": "421 4.3.2 busy", "count": 2}])
        for want in (421, 421, 220):
            c = self.raw()
            self.assertEqual(c.reply()[0], want)
        self.env.set_faults([{"stage": "greeting", "reply": "421 4.3.2 busy", "count": 1}])
        self.assertEqual(self.raw().reply()[0], 421)
        self.env.set_faults([])
        self.assertEqual(self.raw().reply()[0], 220)

    def test_concurrent_sessions(self):
        self.env.set_o365_config({"max_connections_per_mailbox": 100})
        errors = []

        def one(i):
            try:
                s = self.smtp()
                s.sendmail(MAILBOX, ["r%d@example.org" % i], MSG + b"n=%d\r\n" % i)
                s.quit()
            except Exception as e:  # reported below
                errors.append(e)
        n = len(self.env.messages())
        ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(self.env.messages()), n + 20)


if __name__ == "__main__":
    unittest.main(verbosity=2)
