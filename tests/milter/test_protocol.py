#!/usr/bin/env python3
"""Protocol tests of the REAL o365relay-milter driven by miltertest.

Usage: test_protocol.py /path/to/o365relay-milter

Each scenario is a Lua script (the prelude in harness.py adds connect/mail/rcpt
helpers) that fails with error() when a milter reply is not the expected one;
reply texts are checked with mt.eom_check(MT_SMTPREPLY, ...) at end of message
and in the milter's log line (one per message, one per refused recipient) for
the earlier stages, where miltertest does not expose the text. Only stages the
milter negotiated are scripted (no HELO, DATA, EOH: the milter skips them).
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ACCOUNTS, Failures, Milter, TempDir, write  # noqa: E402

BIN = sys.argv[1]
F = Failures()


def log_line(m, qid):
    lines = [l for l in m.log().splitlines() if ": " + qid + ": " in l or
             l.split("]: ", 1)[-1].startswith(qid + ":")]
    return "\n".join(lines)


def scenario(m, name, body, qid, expect_log=(), expect_rc=0):
    rc, out = m.lua(body, qid=qid)
    F.check(rc == expect_rc, "%s: miltertest rc=%d (want %d)\n%s" % (name, rc, expect_rc, out))
    line = log_line(m, qid)
    for want in expect_log:
        F.check(want in line, "%s: log has %r\n  log: %s" % (name, want, line))
    return out


def protocol_scenarios(tmp):
    m = Milter(BIN, tmp, policy="max_recipients = 2\nmax_message_size = 2000\n"
               "blocked_recipient_domains = blocked.example\n")
    m.start()
    try:
        scenario(m, "accept, tag header added, forged copies deleted", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>", "SIZE=300")
expect(conn, SMFIR_CONTINUE, "mail")
rcpt(conn, "<bob@example.org>")
expect(conn, SMFIR_CONTINUE, "rcpt")
header(conn, "X-O365Relay-Account", "alerts")
header(conn, "From", "No Reply <noreply@contoso.com>")
header(conn, "x-o365relay-account", "forged again")
check(mt.bodystring(conn, "hello\r\n"), "body")
expect(conn, SMFIR_CONTINUE, "body")
eom(conn)
expect(conn, SMFIR_CONTINUE, "eom")
if not mt.eom_check(conn, MT_HDRADD, "X-O365Relay-Account", "noreply") then
  error("tag header not added") end
if not mt.eom_check(conn, MT_HDRDELETE, "X-O365Relay-Account") then
  error("forged tag header not deleted") end
if mt.eom_check(conn, MT_HDRADD, "X-Department") then error("static header of another account") end
mt.disconnect(conn)
""", "Q1ACCEPT", ["from=<noreply@contoso.com>, account=noreply", "sasl_username=app1",
                  "nrcpt=1 (<bob@example.org>)", "verdict=accept, rule=-"])
        # Both forged copies are deleted, last index first.
        edits = [l for l in m.log().splitlines() if "Q1ACCEPT: edit" in l]
        F.check(any("delete X-O365Relay-Account[2]" in l for l in edits) and
                any("delete X-O365Relay-Account[1]" in l for l in edits),
                "both forged copies deleted by index: %s" % edits)

        scenario(m, "static header of the account", r"""
conn = open_conn(true)
mail(conn, "<alerts@contoso.com>")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "alerts@contoso.com")
eom(conn)
expect(conn, SMFIR_CONTINUE, "eom")
if not mt.eom_check(conn, MT_HDRADD, "X-O365Relay-Account", "alerts") then error("tag") end
if not mt.eom_check(conn, MT_HDRADD, "X-Department", "operations") then error("static") end
mt.disconnect(conn)
""", "Q2STATIC", ["account=alerts", "verdict=accept"])

        scenario(m, "unknown sender rejected at MAIL", r"""
conn = open_conn(true)
mail(conn, "<x@y.example>")
expect(conn, SMFIR_REPLYCODE, "mail")
mt.disconnect(conn)
""", "Q3UNKNOWN", ['reply="550 5.7.1 sender x@y.example is not allowed to send through this relay"',
                   "rule=unknown_sender"])

        scenario(m, "From misaligned rejected at end of message", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "\"noreply@contoso.com\" <ceo@contoso.com>")
eom(conn)
expect(conn, SMFIR_REPLYCODE, "eom")
if not mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
    "header From ceo@contoso.com is not an address account noreply may send as") then
  error("wrong reply text") end
if mt.eom_check(conn, MT_HDRADD) then error("no edits on a rejected message") end
mt.disconnect(conn)
""", "Q4FROM", ["rule=require_from_alignment"])

        scenario(m, "From with two addresses, the second foreign, rejected at end of message", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "noreply@contoso.com, ceo@victim.example")
eom(conn)
expect(conn, SMFIR_REPLYCODE, "eom")
if not mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
    "header From ceo@victim.example is not an address account noreply may send as") then
  error("wrong reply text") end
mt.disconnect(conn)
""", "Q4bTWOFROM", ["rule=require_from_alignment", "ceo@victim.example"])

        scenario(m, "Sender with a foreign address rejected at end of message", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "noreply@contoso.com")
header(conn, "Sender", "noreply@contoso.com, \"Boss\" <ceo@victim.example>")
eom(conn)
expect(conn, SMFIR_REPLYCODE, "eom")
if not mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
    "header Sender ceo@victim.example is not an address account noreply may send as") then
  error("wrong reply text") end
mt.disconnect(conn)
""", "Q4cSENDER", ["rule=require_from_alignment"])

        scenario(m, "another account's add_header sent by a client is stripped", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "noreply@contoso.com")
header(conn, "X-Department", "forged")
eom(conn)
expect(conn, SMFIR_CONTINUE, "eom")
if not mt.eom_check(conn, MT_HDRDELETE, "X-Department") then
  error("client copy of another account's static header not deleted") end
if mt.eom_check(conn, MT_HDRADD, "X-Department") then error("static header of another account") end
if not mt.eom_check(conn, MT_HDRADD, "X-O365Relay-Account", "noreply") then error("tag") end
mt.disconnect(conn)
""", "Q4dFOREIGNHDR", ["account=noreply", "verdict=accept"])

        scenario(m, "too many recipients: the third gets 452, the message goes on", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<a@example.org>")
expect(conn, SMFIR_CONTINUE, "rcpt 1")
rcpt(conn, "<b@example.org>")
expect(conn, SMFIR_CONTINUE, "rcpt 2 (at the limit)")
rcpt(conn, "<c@example.org>")
expect(conn, SMFIR_REPLYCODE, "rcpt 3 (one over)")
header(conn, "From", "noreply@contoso.com")
eom(conn)
expect(conn, SMFIR_CONTINUE, "eom")
mt.disconnect(conn)
""", "Q5MANY", ['to=<c@example.org>, verdict=tempfail, rule=max_recipients, '
                'reply="452 4.5.3 too many recipients: at most 2 per message through this relay"',
                "nrcpt=2 (<a@example.org>,<b@example.org>)", "verdict=accept"])

        scenario(m, "blocked recipient domain", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<x@Blocked.Example>")
expect(conn, SMFIR_REPLYCODE, "rcpt")
rcpt(conn, "<ok@example.org>")
expect(conn, SMFIR_CONTINUE, "rcpt ok")
mt.disconnect(conn)
""", "Q6BLOCK", ['reply="550 5.7.1 recipient domain blocked.example is blocked on this relay"'])

        scenario(m, "SIZE= over the limit rejected at MAIL", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>", "SIZE=2001")
expect(conn, SMFIR_REPLYCODE, "mail")
mt.disconnect(conn)
""", "Q7SIZE", ['reply="552 5.3.4 message size 2001 exceeds the limit of 2000 bytes of this relay"'])

        scenario(m, "SIZE= exactly at the limit accepted", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>", "SIZE=2000")
expect(conn, SMFIR_CONTINUE, "mail")
mt.disconnect(conn)
""", "Q7bSIZE")

        # Body chunks get no reply (SMFIP_NR_BODY): the counted size is judged
        # at end of message.
        scenario(m, "counted body over the limit rejected", r"""
conn = open_conn(true)
if not mt.test_option(conn, SMFIP_NR_BODY) then error("NR_BODY not negotiated") end
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "noreply@contoso.com")
check(mt.bodystring(conn, string.rep("x", 2100)), "body")
eom(conn)
expect(conn, SMFIR_REPLYCODE, "eom")
if not mt.eom_check(conn, MT_SMTPREPLY, "552", "5.3.4",
    "message size exceeds the limit of 2000 bytes of this relay") then error("text") end
mt.disconnect(conn)
""", "Q8BODY", ['reply="552 5.3.4 message size exceeds the limit of 2000 bytes of this relay"'])

        scenario(m, "non-SMTP submission: recipient verdict at end of message", r"""
conn = open_conn(false)
mail(conn, "noreply@contoso.com")
expect(conn, SMFIR_CONTINUE, "mail")
rcpt(conn, "x@blocked.example")
expect(conn, SMFIR_CONTINUE, "emulated rcpt must not be refused")
header(conn, "From", "noreply@contoso.com")
eom(conn)
expect(conn, SMFIR_REPLYCODE, "eom")
if not mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
    "recipient domain blocked.example is blocked on this relay") then error("text") end
mt.disconnect(conn)
""", "Q9NONSMTP", ["submission=non-smtp", "rule=blocked_recipient_domains"])

        scenario(m, "two messages on one connection", r"""
conn = open_conn(true)
for i = 1, 2 do
  mail(conn, "<noreply@contoso.com>")
  rcpt(conn, "<bob@example.org>")
  header(conn, "From", "noreply@contoso.com")
  eom(conn)
  expect(conn, SMFIR_CONTINUE, "eom " .. i)
end
mt.disconnect(conn)
""", "Q10TWO")
        F.check(log_line(m, "Q10TWO").count("verdict=accept") == 2, "two log lines, two accepts")
    finally:
        F.check(m.stop() == 0, "SIGTERM: clean exit status 0")
        F.check("stopped" in m.log(), "SIGTERM: 'stopped' logged")


def null_sender(tmp):
    m = Milter(BIN, tmp, policy="null_sender = rewrite\nnull_sender_account = alerts\n")
    m.start()
    try:
        scenario(m, "null sender rewritten to the account's mailbox", r"""
conn = open_conn(true)
mail(conn, "<>")
expect(conn, SMFIR_CONTINUE, "mail")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "Mail Delivery System <MAILER-DAEMON@relay.example>")
eom(conn)
expect(conn, SMFIR_CONTINUE, "eom")
if not mt.eom_check(conn, MT_HDRCHANGE, "From", "Mail Delivery System <alerts@contoso.com>") then
  error("From not rewritten") end
if not mt.eom_check(conn, MT_HDRADD, "X-O365Relay-Account", "alerts") then error("tag") end
mt.disconnect(conn)
""", "QNULL", ["from=<>, account=alerts", "rewritten_sender=<alerts@contoso.com>"])

        scenario(m, "null sender: an old-style comment becomes the display name", r"""
conn = open_conn(true)
mail(conn, "<>")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "MAILER-DAEMON@relay.example (Mail Delivery System)")
eom(conn)
expect(conn, SMFIR_CONTINUE, "eom")
if not mt.eom_check(conn, MT_HDRCHANGE, "From", "\"Mail Delivery System\" <alerts@contoso.com>") then
  error("From not rewritten with the comment as display name") end
mt.disconnect(conn)
""", "QNULLCOMMENT", ["from=<>, account=alerts"])
    finally:
        m.stop()


def rate_limit(tmp):
    m = Milter(BIN, tmp, policy="messages_per_minute = 3\n")
    m.start()
    try:
        for i in range(3):
            scenario(m, "rate: message %d accepted" % (i + 1), r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
expect(conn, SMFIR_CONTINUE, "mail")
rcpt(conn, "<bob@example.org>")
header(conn, "From", "noreply@contoso.com")
eom(conn)
expect(conn, SMFIR_CONTINUE, "eom")
mt.disconnect(conn)
""", "QRATE%d" % i, ["verdict=accept"])
        scenario(m, "rate: the 4th message in the minute is tempfailed", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
expect(conn, SMFIR_REPLYCODE, "mail")
mt.disconnect(conn)
""", "QRATE3", ['reply="451 4.7.1 account noreply reached 3 messages per minute; try again later"',
                "rule=messages_per_minute"])
        scenario(m, "rate: another account is not limited", r"""
conn = open_conn(true)
mail(conn, "<alerts@contoso.com>")
expect(conn, SMFIR_CONTINUE, "mail")
mt.disconnect(conn)
""", "QRATEOTHER")
    finally:
        m.stop()
    # The counters survive a restart (saved at SIGTERM, loaded at start).
    F.check(os.path.exists(os.path.join(m.state, "milter-rate.json")), "rate counters saved")
    m.start()
    try:
        scenario(m, "rate: still limited after a restart", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
expect(conn, SMFIR_REPLYCODE, "mail")
mt.disconnect(conn)
""", "QRATERESTART", ["rule=messages_per_minute"])
    finally:
        m.stop()


RCPTS3 = r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
rcpt(conn, "<a@example.org>")
expect(conn, SMFIR_CONTINUE, "rcpt 1")
rcpt(conn, "<b@example.org>")
expect(conn, SMFIR_CONTINUE, "rcpt 2")
rcpt(conn, "<c@example.org>")
expect(conn, %s, "rcpt 3")
mt.disconnect(conn)
"""


def reload(tmp):
    m = Milter(BIN, tmp, policy="max_recipients = 5\n")
    m.start()
    try:
        scenario(m, "reload: before, 3 recipients allowed", RCPTS3 % "SMFIR_CONTINUE", "QHUP1")
        m.write_config(policy="max_recipients = 2\n")
        mark = len(m.log())
        m.hup()
        m.wait_log("configuration reloaded", after=mark)
        scenario(m, "reload: the new rule applies", RCPTS3 % "SMFIR_REPLYCODE", "QHUP2",
                 ["rule=max_recipients"])
        # A bad file keeps the old config and the log says why.
        write(m.conf, m.config_text(policy="max_recipients = 2\nno_such_key = 1\n"))
        mark = len(m.log())
        m.hup()
        m.wait_log("reload failed, keeping the old configuration", after=mark)
        F.check(re.search(r"reload failed, keeping the old configuration: .*o365relay\.conf:\d+: "
                          r"\[policy\] no_such_key: unknown key", m.log()[mark:]) is not None,
                "reload: the log names file, line and key:\n" + m.log()[mark:])
        scenario(m, "reload: old config still in force after a bad file",
                 RCPTS3 % "SMFIR_REPLYCODE", "QHUP3", ["rule=max_recipients"])
        F.check(m.proc.poll() is None, "reload: the milter survived SIGHUP")
    finally:
        F.check(m.stop() == 0, "reload: clean stop")


def check_config(tmp):
    m = Milter(BIN, tmp)
    p = subprocess.run([BIN, "-c", m.conf, "--check-config"], capture_output=True, text=True)
    F.check(p.returncode == 0, "--check-config good file: 0 (%d %s)" % (p.returncode, p.stderr))
    write(m.conf, m.config_text(policy="max_recipients = lots\n"))
    p = subprocess.run([BIN, "-c", m.conf, "--check-config"], capture_output=True, text=True)
    F.check(p.returncode == 78, "--check-config bad value: 78 (got %d)" % p.returncode)
    F.check("o365relay.conf:" in p.stderr and "max_recipients" in p.stderr,
            "--check-config names file and key on stderr: " + p.stderr)
    p = subprocess.run([BIN, "-c", os.path.join(tmp, "missing.conf"), "--check-config"],
                       capture_output=True, text=True)
    F.check(p.returncode == 78 and "missing.conf" in p.stderr,
            "--check-config missing file: 78 (%d %s)" % (p.returncode, p.stderr))
    text = m.config_text().replace("user = root", "user = no-such-user-o365")
    write(m.conf, text)
    p = subprocess.run([BIN, "-c", m.conf, "--check-config"], capture_output=True, text=True)
    F.check(p.returncode == 78 and "no-such-user-o365" in p.stderr,
            "--check-config unknown [relay] user: 78 (%d %s)" % (p.returncode, p.stderr))
    p = subprocess.run([BIN, "-c", m.conf], capture_output=True, text=True, timeout=10)
    F.check(p.returncode == 78, "start with a bad config: 78 (got %d)" % p.returncode)


def unix_socket(tmp):
    path = os.path.join(tmp, "milter.sock")
    # A stale socket left by a crashed milter is removed.
    import socket as so
    stale = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    m = Milter(BIN, tmp, milter="socket_mode = 0660\n", socket_spec="unix:" + path)
    m.start()
    try:
        mode = os.stat(path).st_mode & 0o777
        F.check(mode == 0o660, "unix socket has socket_mode 0660 (got %o)" % mode)
        scenario(m, "unix socket: accept", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
expect(conn, SMFIR_CONTINUE, "mail")
mt.disconnect(conn)
""", "QUNIX")
    finally:
        m.stop()
    F.check(not os.path.exists(path), "unix socket removed at stop")


def refusing_entra(tmp):
    """A minimal HTTPS token endpoint (test CA) that refuses the client secret the
    way Entra does: HTTP 401 invalid_client AADSTS7000215."""
    import http.server
    import json
    import ssl
    import threading
    ca_dir = os.path.join(tmp, "ca")
    subprocess.run(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes",
                                       "make_test_ca.sh"), ca_dir], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hits = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.append(self.path)
            body = json.dumps({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the "
                                     "secret being sent in the request is the client secret "
                                     "value, not the client secret ID.\r\nTrace ID: x",
                "error_codes": [7000215]}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(ca_dir, "server.crt"), os.path.join(ca_dir, "server.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, ca_dir, hits


def account_health(tmp):
    srv, ca_dir, hits = refusing_entra(tmp)
    entra = "authority = https://127.0.0.1:%d\nca_file = %s\n" % (
        srv.server_address[1], os.path.join(ca_dir, "ca.crt"))
    m = Milter(BIN, tmp, entra=entra)
    m.start()
    try:
        # The refresher asks Entra at start; the cache records the refusal.
        m.wait_log("refresher: account noreply (SMTP token):", timeout=15)
        F.check(len(hits) >= 1, "health: the refresher asked the token endpoint (%d)" % len(hits))
        scenario(m, "health: credentials refused by Entra tempfail the account", r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
expect(conn, SMFIR_REPLYCODE, "mail")
mt.disconnect(conn)
""", "QHEALTH", ['reply="451 4.7.0 account noreply cannot get a token from Entra ID: ',
                 "AADSTS7000215", "rule=account_health"])
        F.check("not-a-real-secret" not in m.log(), "health: the secret never reaches the log")
    finally:
        m.stop()
        srv.shutdown()


def main():
    for fn in (protocol_scenarios, null_sender, rate_limit, reload, check_config, unix_socket,
               account_health):
        t = TempDir()
        try:
            print("==", fn.__name__, flush=True)
            fn(t.path)
        except Exception as e:  # a harness failure is a test failure
            F.check(False, "%s: %s" % (fn.__name__, e))
        finally:
            t.close()
    F.exit()


if __name__ == "__main__":
    main()
