#!/usr/bin/env python3
"""Self-test of tests/fakes/fake_graph.py with python's http.client + ssl, tokens from the
fake Entra (or minted with fake_tokens.py): it must behave like Microsoft Graph's mail
sending (O365-FACTS.md, "Microsoft Graph") and its faults and counters must do what
README.md says, or the Graph delivery tests prove nothing."""
import base64
import glob
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "transport"))
import harness  # noqa: E402
from harness import CLIENT_ID, MAILBOX, TENANT  # noqa: E402

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
OTHER_APP = "99999999-0000-0000-0000-000000000000"
MSG = (b"From: noreply@contoso.com\r\nTo: bob@example.org\r\nCc: carol@example.org\r\n"
       b"Bcc: hidden@example.org\r\nSubject: t\r\nMessage-ID: <m1@contoso.com>\r\n\r\nhello\r\n")


class GraphEnv(harness.Env):
    """harness.Env plus a fake Graph (state dir DIR/graph) and a fake Entra that issues
    both Office 365 and Graph tokens."""

    def start_graph(self, *extra):
        self.graph_state = os.path.join(self.dir, "graph")
        os.makedirs(self.graph_state, exist_ok=True)
        self.set_graph_config({})
        p, self.graph_port = harness.start_process(
            [sys.executable, os.path.join(HERE, "fake_graph.py"), "serve", "--state",
             self.graph_state, "--certs", self.certs, "--seed", "1", *extra],
            os.path.join(self.dir, "fake_graph.stderr"))
        self.procs.append(p)
        return self.graph_port

    def start_entra_for_graph(self):
        self.start_entra()
        path = os.path.join(self.entra_state, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["app_scope"] = [harness.APP_SCOPE, GRAPH_SCOPE]
        self._write(path, cfg)

    def set_graph_config(self, extra, mailboxes=None):
        cfg = {"tenant": TENANT, "apps": [CLIENT_ID],
               "mailboxes": mailboxes if mailboxes is not None else {
                   MAILBOX: {"send_as": ["@apps.contoso.com"]},
                   "other@contoso.com": {},
                   "rate@contoso.com": {},
                   "onprem@contoso.com": {"on_premises": True},
                   "full@contoso.com": {"quota_exceeded": True},
                   "scoped@contoso.com": {"apps": [OTHER_APP]}}}
        cfg.update(extra)
        self._write(os.path.join(self.graph_state, "config.json"), cfg)

    def set_graph_faults(self, rules):
        self._write(os.path.join(self.graph_state, "faults.json"), {"faults": rules})

    def graph_stats(self):
        with open(os.path.join(self.graph_state, "stats.json")) as f:
            return json.load(f)

    def deliveries(self):
        try:
            with open(os.path.join(self.graph_state, "deliveries.jsonl")) as f:
                return [json.loads(line) for line in f]
        except FileNotFoundError:
            return []

    def received(self, rcpt):
        """[bytes] every copy the recipient got, in order."""
        out = []
        for p in sorted(glob.glob(os.path.join(self.graph_state, "mailbox", rcpt.lower(),
                                               "*.eml"))):
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def entra_token(self, scope):
        body = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": self.ENTRA_SECRET, "scope": scope},
            quote_via=urllib.parse.quote).encode()
        req = urllib.request.Request(
            "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (self.entra_port, TENANT), data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, context=self.client_ctx(), timeout=10) as r:
            return json.load(r)["access_token"]


class FakeGraphTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = GraphEnv("fakegraph")
        cls.env.start_entra_for_graph()
        cls.port = cls.env.start_graph()
        cls.token = cls.env.entra_token(GRAPH_SCOPE)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.env.set_graph_faults([])
        self.env.set_graph_config({})

    # --- helpers -------------------------------------------------------------------------
    def conn(self, timeout=10):
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.env.client_ctx())

    def call(self, method, path, body=b"", ctype="text/plain", token=None, conn=None,
             headers=None):
        """(status, headers dict lowercased, body bytes)."""
        c = conn or self.conn()
        h = {"Authorization": "Bearer " + (token or self.token)}
        if token == "":
            h = {}
        if body or method in ("POST", "PATCH"):
            h["Content-Type"] = ctype
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        if conn is None:
            c.close()
        return out

    def send_mail(self, mime=MSG, mailbox=MAILBOX, **kw):
        return self.call("POST", "/v1.0/users/%s/sendMail" % urllib.parse.quote(mailbox),
                         base64.b64encode(mime), **kw)

    def assertGraphError(self, answer, status, code, message=None):
        st, headers, body = answer
        self.assertEqual(st, status, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], code)
        self.assertRegex(err["innerError"]["date"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
        self.assertEqual(err["innerError"]["request-id"], headers["request-id"])
        if message is not None:
            self.assertEqual(err["message"], message)
        return err

    def draft(self, mime=MSG):
        st, h, body = self.call("POST", "/v1.0/users/%s/messages" % MAILBOX,
                                base64.b64encode(mime))
        self.assertEqual(st, 201, body)
        self.assertEqual(h["content-type"], "application/json")
        return json.loads(body)

    # --- sendMail --------------------------------------------------------------------------
    def test_sendmail_mime_delivers_to_header_recipients_once_bcc_hidden(self):
        n = len(self.env.deliveries())
        copies = {r: len(self.env.received(r)) for r in
                  ("bob@example.org", "carol@example.org", "hidden@example.org")}
        st, h, body = self.send_mail()
        self.assertEqual((st, body), (202, b""))
        self.assertNotIn("content-type", h)
        d = self.env.deliveries()[n]
        self.assertEqual(d["method"], "sendMail")
        self.assertEqual(d["mailbox"], MAILBOX)
        self.assertEqual(d["recipients"], ["bob@example.org", "carol@example.org",
                                           "hidden@example.org"])
        self.assertEqual(d["bcc"], ["hidden@example.org"])
        self.assertEqual(base64.b64decode(d["mime_b64"]), MSG)
        self.assertEqual(d["bare_lf"], 0)
        with open(os.path.join(self.env.graph_state, "sent", "%06d.eml" % d["id"]), "rb") as f:
            self.assertEqual(f.read(), MSG)  # the sender's copy keeps its Bcc
        for r, before in copies.items():
            got = self.env.received(r)
            self.assertEqual(len(got), before + 1, r)
            self.assertNotIn(b"Bcc:", got[-1])
            self.assertNotIn(b"hidden@example.org", got[-1])
            self.assertIn(b"To: bob@example.org\r\n", got[-1])

    def test_recipients_deduplicated_and_folded_bcc_removed(self):
        mime = (b"From: noreply@contoso.com\r\nTo: a@example.org, A@example.org\r\n"
                b"Bcc: a@example.org,\r\n b@example.org\r\n\r\nx\r\n")
        na, nb = len(self.env.received("a@example.org")), len(self.env.received("b@example.org"))
        self.assertEqual(self.send_mail(mime)[0], 202)
        self.assertEqual(len(self.env.received("a@example.org")), na + 1)
        got = self.env.received("b@example.org")
        self.assertEqual(len(got), nb + 1)
        self.assertEqual(got[-1], b"From: noreply@contoso.com\r\n"
                                  b"To: a@example.org, A@example.org\r\n\r\nx\r\n")

    def test_no_recipients_and_bad_base64(self):
        n = len(self.env.deliveries())
        self.assertGraphError(self.send_mail(b"From: noreply@contoso.com\r\nSubject: x\r\n\r\nx"),
                              400, "ErrorInvalidRecipients",
                              "A message can't be sent because it contains no recipients")
        for bad in (b"not base64!!", b"QUJD=", b""):
            with self.subTest(bad):
                self.assertGraphError(
                    self.call("POST", "/v1.0/users/%s/sendMail" % MAILBOX, bad), 400,
                    "ErrorMimeContentInvalidBase64String")
        self.assertEqual(len(self.env.deliveries()), n)
        # base64 wrapped in lines (as MIME encoders do) is fine
        wrapped = base64.encodebytes(MSG).replace(b"\n", b"\r\n")
        self.assertEqual(self.call("POST", "/v1.0/users/%s/sendMail" % MAILBOX, wrapped)[0], 202)

    def test_sendmail_json(self):
        n = len(self.env.deliveries())
        doc = {"message": {"subject": "j", "body": {"contentType": "Text", "content": "hi"},
                           "toRecipients": [{"emailAddress": {"address": "j@example.org"}}]},
               "saveToSentItems": False}
        st, _, body = self.call("POST", "/v1.0/users/%s/sendMail" % MAILBOX,
                                json.dumps(doc).encode(), "application/json")
        self.assertEqual((st, body), (202, b""))
        d = self.env.deliveries()[n]
        self.assertEqual((d["method"], d["recipients"]), ("sendMail-json", ["j@example.org"]))
        self.assertGraphError(self.call("POST", "/v1.0/users/%s/sendMail" % MAILBOX, b"{x",
                                        "application/json"), 400, "BadRequest")

    def test_keep_alive(self):
        c = self.conn()
        for _ in range(3):
            self.assertEqual(self.send_mail(conn=c)[0], 202)
        c.close()

    # --- drafts ----------------------------------------------------------------------------
    def test_draft_create_patch_send_delivers_to_current_lists(self):
        m = self.draft()
        self.assertTrue(m["isDraft"])
        self.assertEqual([r["emailAddress"]["address"] for r in m["toRecipients"]],
                         ["bob@example.org"])
        self.assertEqual([r["emailAddress"]["address"] for r in m["bccRecipients"]],
                         ["hidden@example.org"])
        self.assertEqual(m["internetMessageId"], "<m1@contoso.com>")
        path = "/v1.0/users/%s/messages/%s" % (MAILBOX, urllib.parse.quote(m["id"], safe=""))
        patch = {"toRecipients": [], "ccRecipients": [],
                 "bccRecipients": [{"emailAddress": {"address": "env1@example.org"}},
                                   {"emailAddress": {"address": "env2@example.org"}}]}
        st, _, body = self.call("PATCH", path, json.dumps(patch).encode(), "application/json")
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["toRecipients"], [])
        self.assertEqual(json.loads(body)["id"], m["id"])
        bob = len(self.env.received("bob@example.org"))
        n = len(self.env.deliveries())
        st, _, body = self.call("POST", path + "/send")
        self.assertEqual((st, body), (202, b""))
        d = self.env.deliveries()[n]
        self.assertEqual((d["method"], d["draft_id"]), ("draft", m["id"]))
        self.assertEqual(d["recipients"], ["env1@example.org", "env2@example.org"])
        self.assertEqual(len(self.env.received("bob@example.org")), bob)  # header only
        got = self.env.received("env1@example.org")[-1]
        self.assertNotIn(b"bob@example.org", got)  # To/Cc rebuilt from the item
        self.assertNotIn(b"env2@example.org", got)  # Bcc is not shown
        self.assertIn(b"\r\n\r\nhello\r\n", got)
        # a sent draft is gone from Drafts
        self.assertGraphError(self.call("POST", path + "/send"), 404, "ErrorItemNotFound",
                              "The specified object was not found in the store.")
        self.assertGraphError(self.call("DELETE", path), 404, "ErrorItemNotFound")

    def test_draft_delete_and_unknown_id(self):
        m = self.draft()
        path = "/v1.0/users/%s/messages/%s" % (MAILBOX, m["id"])
        self.assertEqual(self.call("GET", path)[0], 200)
        live = self.env.graph_stats()["drafts_live"]
        st, _, body = self.call("DELETE", path)
        self.assertEqual((st, body), (204, b""))
        self.assertEqual(self.env.graph_stats()["drafts_live"], live - 1)
        for method, suffix, body in (("DELETE", "", b""), ("POST", "/send", b""),
                                     ("PATCH", "", b"{}"), ("GET", "", b"")):
            with self.subTest(method + suffix):
                self.assertGraphError(self.call(method, path + suffix, body, "application/json"),
                                      404, "ErrorItemNotFound")

    def test_draft_send_without_recipients(self):
        m = self.draft()
        path = "/v1.0/users/%s/messages/%s" % (MAILBOX, m["id"])
        empty = {"toRecipients": [], "ccRecipients": [], "bccRecipients": []}
        self.assertEqual(self.call("PATCH", path, json.dumps(empty).encode(),
                                   "application/json")[0], 200)
        self.assertGraphError(self.call("POST", path + "/send"), 400, "ErrorInvalidRecipients")
        self.assertEqual(self.call("DELETE", path)[0], 204)

    # --- authentication ------------------------------------------------------------------
    def test_bad_tokens_401(self):
        good = self.token
        cases = {
            "none": "",
            "tampered": good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),
            "expired": self.env.token(lifetime=-10, scope=GRAPH_SCOPE)["token"],
            "outlook audience": self.env.entra_token(harness.APP_SCOPE),
            "tenant": self.env.token(tenant="fabrikam.onmicrosoft.com", scope=GRAPH_SCOPE)["token"],
            "delegated smtp": self.env.token(scope="https://outlook.office.com/SMTP.Send",
                                             mailbox=MAILBOX)["token"],
        }
        n = len(self.env.deliveries())
        for name, tok in cases.items():
            with self.subTest(name):
                st, h, _ = ans = self.send_mail(token=tok)
                self.assertGraphError(ans, 401, "InvalidAuthenticationToken")
                self.assertIn("Bearer", h["www-authenticate"])
        self.assertEqual(len(self.env.deliveries()), n)

    def test_delegated_tokens(self):
        ok = self.env.token(scope="https://graph.microsoft.com/Mail.Send offline_access",
                            mailbox=MAILBOX)["token"]
        self.assertEqual(self.send_mail(token=ok)[0], 202)
        other = self.env.token(scope="https://graph.microsoft.com/Mail.Send",
                               mailbox="other@contoso.com")["token"]
        self.assertGraphError(self.send_mail(token=other), 403, "ErrorAccessDenied")
        no_send = self.env.token(scope="https://graph.microsoft.com/User.Read",
                                 mailbox=MAILBOX)["token"]
        self.assertGraphError(self.send_mail(token=no_send), 403, "ErrorAccessDenied")

    def test_revocation(self):
        t1 = self.env.entra_token(GRAPH_SCOPE)
        self.assertEqual(self.send_mail(token=t1)[0], 202)
        subprocess.run([sys.executable, os.path.join(HERE, "fake_graph.py"), "revoke",
                        "--state", self.env.graph_state, "--seen"], check=True)
        self.assertGraphError(self.send_mail(token=t1), 401, "InvalidAuthenticationToken")
        t2 = self.env.token(scope=GRAPH_SCOPE)
        self.assertEqual(self.send_mail(token=t2["token"])[0], 202)
        subprocess.run([sys.executable, os.path.join(HERE, "fake_graph.py"), "revoke",
                        "--state", self.env.graph_state, "--jti", t2["claims"]["jti"]],
                       check=True)
        self.assertGraphError(self.send_mail(token=t2["token"]), 401,
                              "InvalidAuthenticationToken")
        self.__class__.token = self.env.entra_token(GRAPH_SCOPE)  # t1 may be the class token

    # --- mailboxes and Send As -------------------------------------------------------------
    def test_mailbox_errors(self):
        self.assertGraphError(self.send_mail(mailbox="ghost@contoso.com"), 404,
                              "ErrorInvalidUser",
                              "The requested user 'ghost@contoso.com' is invalid.")
        self.assertGraphError(self.send_mail(mailbox="onprem@contoso.com"), 404,
                              "MailboxNotEnabledForRESTAPI")
        self.assertGraphError(self.send_mail(mailbox="scoped@contoso.com"), 403,
                              "ErrorAccessDenied",
                              "Access is denied. Check credentials and try again.")
        full = MSG.replace(b"noreply@", b"full@")
        self.assertGraphError(self.send_mail(full, mailbox="full@contoso.com"), 403,
                              "ErrorQuotaExceeded")
        self.env.set_graph_config({"quota_status": 400})
        self.assertGraphError(self.send_mail(full, mailbox="full@contoso.com"), 400,
                              "ErrorQuotaExceeded")

    def test_send_as(self):
        boss = MSG.replace(b"From: noreply@contoso.com", b"From: Boss <boss@contoso.com>")
        self.assertGraphError(self.send_mail(boss), 403, "ErrorSendAsDenied")
        ok = MSG.replace(b"From: noreply@contoso.com", b"From: \"App\" <x@APPS.contoso.com>")
        self.assertEqual(self.send_mail(ok)[0], 202)
        no_from = MSG.replace(b"From: noreply@contoso.com\r\n", b"")
        self.assertEqual(self.send_mail(no_from)[0], 202)
        m = self.draft(boss)  # a draft is checked when it is sent
        path = "/v1.0/users/%s/messages/%s" % (MAILBOX, m["id"])
        self.assertGraphError(self.call("POST", path + "/send"), 403, "ErrorSendAsDenied")
        self.call("DELETE", path)

    # --- limits ----------------------------------------------------------------------------
    def test_request_body_limit(self):
        limit = 4 * 1024 * 1024
        at_limit = b"A" * limit  # valid base64 of 3 MiB of zeros-ish bytes
        self.assertGraphError(self.call("POST", "/v1.0/users/%s/sendMail" % MAILBOX, at_limit),
                              400, "ErrorInvalidRecipients")
        st, h, body = self.call("POST", "/v1.0/users/%s/sendMail" % MAILBOX, at_limit + b"AAAA")
        self.assertEqual(st, 413)
        self.assertEqual(json.loads(body)["error"]["code"], "ErrorRequestEntityTooLarge")

    def test_mailbox_concurrency_limit(self):
        self.env.set_graph_faults([{"route": "sendMail", "action": "delay", "delay": 2.5}])
        before = self.env.graph_stats()
        results = []

        def one():
            results.append(self.send_mail())
        ts = [threading.Thread(target=one) for _ in range(6)]
        for t in ts:
            t.start()
            time.sleep(0.05)
        for t in ts:
            t.join()
        codes = sorted(r[0] for r in results)
        self.assertEqual(codes, [202] * 4 + [429] * 2)
        for r in results:
            if r[0] == 429:
                self.assertEqual(r[1]["retry-after"], "1")
                self.assertGraphError(r, 429, "ApplicationThrottled",
                                      "Application is over its MailboxConcurrency limit.")
        after = self.env.graph_stats()
        self.assertEqual(after["max_concurrency"][MAILBOX], 6)
        self.assertEqual(after["concurrency_rejected"] - before["concurrency_rejected"], 2)
        # another mailbox is not affected: it has its own slots
        self.env.set_graph_faults([])
        other = MSG.replace(b"noreply@", b"other@")
        self.assertEqual(self.send_mail(other, mailbox="other@contoso.com")[0], 202)

    def test_request_rate_limit(self):
        self.env.set_graph_config({"rate_limit": [3, 60]})
        codes = [self.send_mail(mailbox="rate@contoso.com",  # used by no other test
                                mime=MSG.replace(b"noreply@", b"rate@")) for _ in range(4)]
        self.assertEqual([c[0] for c in codes], [202, 202, 202, 429])
        self.assertGreater(int(codes[3][1]["retry-after"]), 0)
        self.assertGraphError(codes[3], 429, "ApplicationThrottled",
                              "Application is over its RequestRate limit.")

    # --- faults ----------------------------------------------------------------------------
    def test_throttle_next_k_requests(self):
        self.env.set_graph_faults([{"status": 429, "code": "ApplicationThrottled",
                                    "retry_after": 7, "count": 2}])
        a, b, c = self.send_mail(), self.send_mail(), self.send_mail()
        for r in (a, b):
            self.assertGraphError(r, 429, "ApplicationThrottled")
            self.assertEqual(r[1]["retry-after"], "7")
        self.assertEqual(c[0], 202)

    def test_reply_faults_by_route(self):
        for status, code in ((500, "InternalServerError"), (503, "ServiceUnavailable"),
                             (504, "GatewayTimeout")):
            with self.subTest(status):
                self.env.set_graph_faults([{"route": "sendDraft", "status": status,
                                            "code": code, "count": 1}])
                m = self.draft()  # createMessage is not hit
                path = "/v1.0/users/%s/messages/%s" % (MAILBOX, m["id"])
                self.assertGraphError(self.call("POST", path + "/send"), status, code)
                self.assertEqual(self.call("POST", path + "/send")[0], 202)  # count used up

    def test_raw_body_fault(self):
        self.env.set_graph_faults([{"status": 502, "body": "<html>Bad Gateway</html>"}])
        st, h, body = self.send_mail()
        self.assertEqual((st, h["content-type"], body), (502, "text/html",
                                                          b"<html>Bad Gateway</html>"))

    def test_close_after_request_not_delivered(self):
        self.env.set_graph_faults([{"route": "sendMail", "action": "close", "count": 1}])
        n = len(self.env.deliveries())
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            self.send_mail()
        self.assertEqual(len(self.env.deliveries()), n)
        self.assertEqual(self.send_mail()[0], 202)

    def test_close_after_delivery(self):
        self.env.set_graph_faults([{"route": "sendMail", "action": "close", "after": True}])
        n = len(self.env.deliveries())
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            self.send_mail()
        self.assertEqual(len(self.env.deliveries()), n + 1)  # sent, but the client cannot know

    def test_close_before_body(self):
        self.env.set_graph_faults([{"action": "close_before_body"}])
        n = len(self.env.deliveries())
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError,
                                BrokenPipeError)):
            self.send_mail(MSG + b"x" * 3000000)
        self.assertEqual(len(self.env.deliveries()), n)

    def test_stall_and_delay(self):
        self.env.set_graph_faults([{"route": "sendMail", "action": "stall", "count": 1}])
        c = self.conn(timeout=1.0)
        with self.assertRaises(socket.timeout):
            self.send_mail(conn=c)
        c.close()
        self.env.set_graph_faults([{"route": "sendMail", "action": "delay", "delay": 0.7}])
        t = time.time()
        self.assertEqual(self.send_mail()[0], 202)
        self.assertGreaterEqual(time.time() - t, 0.7)

    def test_fault_counts_restart_when_file_changes(self):
        rule = {"status": 503, "count": 1}
        self.env.set_graph_faults([rule])
        self.assertEqual([self.send_mail()[0] for _ in range(2)], [503, 202])
        self.env.set_graph_faults([dict(rule, message="again")])
        self.assertEqual([self.send_mail()[0] for _ in range(2)], [503, 202])

    def test_probability_and_mailbox_filter(self):
        self.env.set_graph_faults([{"status": 503, "probability": 0.5, "mailbox": MAILBOX}])
        codes = [self.send_mail()[0] for _ in range(60)]
        self.assertTrue(10 < codes.count(503) < 50, codes.count(503))
        other = MSG.replace(b"noreply@", b"other@")
        self.assertEqual(self.send_mail(other, mailbox="other@contoso.com")[0], 202)

    # --- routing and counters --------------------------------------------------------------
    def test_unknown_routes(self):
        self.assertGraphError(self.call("GET", "/v1.0/users/%s/sendMail" % MAILBOX), 405,
                              "BadRequest")
        self.assertGraphError(self.call("POST", "/v1.0/users/%s/sendMial" % MAILBOX, b"x"),
                              400, "BadRequest",
                              "Resource not found for the segment 'sendMial'.")

    def test_counters(self):
        before = self.env.graph_stats()
        tok = self.env.token(scope=GRAPH_SCOPE)
        self.send_mail(token=tok["token"])
        self.send_mail(token=tok["token"])
        self.call("DELETE", "/v1.0/users/%s/messages/nope" % MAILBOX)
        after = self.env.graph_stats()
        self.assertEqual(after["by_route"]["sendMail"] - before["by_route"].get("sendMail", 0), 2)
        self.assertEqual(after["by_route_status"].get("deleteMessage 404", 0) -
                         before["by_route_status"].get("deleteMessage 404", 0), 1)
        self.assertEqual(after["tokens_seen"][tok["claims"]["jti"]], 2)
        self.assertEqual(after["deliveries"] - before["deliveries"], 2)
        self.assertEqual(after["recipient_copies"] - before["recipient_copies"], 6)
        with open(os.path.join(self.env.graph_state, "events.jsonl")) as f:
            text = f.read()
        self.assertIn(tok["claims"]["jti"], text)
        self.assertNotIn(tok["token"], text)  # never a token in a log


if __name__ == "__main__":
    unittest.main(verbosity=2)
