#!/usr/bin/env python3
"""The REAL o365relay-milter behind a private Postfix instance (postfix -c DIR,
loopback only; see tests/integration/postfix_instance.py). Mail is sent with smtplib:
allowed mail is delivered (pipe transport to files) with the tag header, the
forged copies gone and the static header added; forbidden mail is refused in
the SMTP session with the milter's code and text. A sendmail(1) submission goes
through non_smtpd_milters and is refused at end of message, never at the
emulated RCPT stage (no "Server configuration error").

Usage: postfix_integration.py /path/to/o365relay-milter
"""
import os
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Failures, Milter, TempDir  # noqa: E402
from postfix_instance import Postfix  # noqa: E402

BIN = sys.argv[1]
F = Failures()

POLICY = """max_recipients = 2
blocked_recipient_domains = blocked.example
null_sender = rewrite
null_sender_account = alerts
"""


def msg(frm, extra=""):
    return ("From: %s\r\nTo: bob@example.org\r\nSubject: test\r\n%s\r\nhello\r\n" % (frm, extra))


def headers_of(text):
    head = text.split("\n\n", 1)[0]
    return [l for l in head.splitlines()]


def refused(fn):
    """Runs fn; returns (code, text) of the SMTP refusal, or (0, '') if none."""
    try:
        fn()
        return 0, ""
    except smtplib.SMTPRecipientsRefused as e:
        (code, text), = e.recipients.values()
        return code, text.decode()
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode()


def main():
    t = TempDir("o365pfx-")
    os.chmod(t.path, 0o755)  # the pipe user (nobody) must reach deliver.sh
    m = pf = None
    try:
        mdir = os.path.join(t.path, "milter")
        os.makedirs(mdir)
        m = Milter(BIN, mdir, policy=POLICY)
        m.start()
        pf = Postfix(os.path.join(t.path, "postfix"), milter_sock="inet:127.0.0.1:%d" % m.port)
        pf.start()

        def smtp():
            s = smtplib.SMTP("127.0.0.1", pf.port, timeout=30)
            s.ehlo("client.test")
            return s

        # 1. Allowed mail: delivered with the tag header, forged copies deleted.
        s = smtp()
        r = s.sendmail("noreply@contoso.com", ["bob@example.org"],
                       msg("No Reply <noreply@contoso.com>",
                           "X-O365Relay-Account: alerts\r\nx-o365relay-account: forged\r\n"))
        F.check(r == {}, "allowed mail accepted by smtpd: %s" % r)
        s.quit()
        got = pf.wait_delivered(1)
        hs = headers_of(got[0])
        tags = [h for h in hs if h.lower().startswith("x-o365relay-account:")]
        F.check(tags == ["X-O365Relay-Account: noreply"],
                "delivered with exactly one tag header, forged copies gone: %s" % tags)

        # 2. Static header of the account.
        s = smtp()
        s.sendmail("alerts@contoso.com", ["bob@example.org"], msg("alerts@contoso.com"))
        s.quit()
        got = pf.wait_delivered(2)
        alerts = [g for g in got if "X-O365Relay-Account: alerts" in g]
        F.check(len(alerts) == 1 and "X-Department: operations" in alerts[0],
                "static header X-Department added for account alerts")

        # 3. Unknown sender: refused at MAIL FROM with the milter's text.
        s = smtp()
        code, text = refused(lambda: s.sendmail("x@y.example", ["bob@example.org"], msg("x@y.example")))
        F.check(code == 550 and text == "5.7.1 sender x@y.example is not allowed to send through this relay",
                "unknown sender refused in the session: %d %s" % (code, text))
        s.quit()

        # 4. Blocked recipient domain: refused at RCPT TO.
        s = smtp()
        code, text = refused(lambda: s.sendmail("noreply@contoso.com", ["x@blocked.example"],
                                                msg("noreply@contoso.com")))
        F.check(code == 550 and text == "5.7.1 recipient domain blocked.example is blocked on this relay",
                "blocked domain refused at RCPT: %d %s" % (code, text))
        s.quit()

        # 5. Header From misaligned: refused after DATA.
        s = smtp()
        code, text = refused(lambda: s.sendmail("noreply@contoso.com", ["bob@example.org"],
                                                msg("Boss <ceo@contoso.com>")))
        F.check(code == 550 and text ==
                "5.7.1 header From ceo@contoso.com is not an address account noreply may send as",
                "misaligned From refused after DATA: %d %s" % (code, text))
        s.quit()

        # 6. Too many recipients: the third gets 452 4.5.3, the message goes to two.
        s = smtp()
        r = s.sendmail("noreply@contoso.com", ["a@example.org", "b@example.org", "c@example.org"],
                       msg("noreply@contoso.com"))
        F.check(list(r.keys()) == ["c@example.org"] and r["c@example.org"][0] == 452 and
                r["c@example.org"][1].decode().startswith("4.5.3 too many recipients"),
                "third recipient refused with 452 4.5.3: %s" % r)
        s.quit()
        got = pf.wait_delivered(3)
        F.check(any("X-Test-Envelope-Recipient: a@example.org\nX-Test-Envelope-Recipient: b@example.org"
                    in g for g in got) or
                sum("X-Test-Envelope-Recipient: a@example.org" in g or
                    "X-Test-Envelope-Recipient: b@example.org" in g for g in got) == 2,
                "the message went to the first two recipients")

        # 7. Null sender: envelope rewritten to the account's mailbox, From too.
        n_before = len(pf.delivered())
        s = smtp()
        s.sendmail("", ["bob@example.org"],
                   msg("Mail Delivery System <MAILER-DAEMON@app.example>"))
        s.quit()
        got = pf.wait_delivered(n_before + 1)
        null = [g for g in got if "X-O365Relay-Account: alerts" in g and "Mail Delivery" in g]
        F.check(len(null) == 1 and "X-Test-Envelope-Sender: alerts@contoso.com" in null[0] and
                "From: Mail Delivery System <alerts@contoso.com>" in null[0],
                "null sender rewritten (envelope and From): %s" % (null[0][:600] if null else got))

        # 8. sendmail(1) submission (non_smtpd_milters): a blocked recipient is
        # refused at end of message, not at the emulated RCPT stage.
        mark = len(m.log())
        p = subprocess.run(["sendmail", "-C", pf.etc, "-f", "noreply@contoso.com",
                            "x@blocked.example"], input=msg("noreply@contoso.com"),
                           capture_output=True, text=True, timeout=30)
        F.check(p.returncode == 0, "sendmail(1) accepted the submission: %d %s" % (
            p.returncode, p.stderr))
        deadline = time.time() + 20
        while time.time() < deadline and "submission=non-smtp" not in m.log()[mark:]:
            time.sleep(0.2)
        nl = [l for l in m.log()[mark:].splitlines() if "submission=non-smtp" in l]
        F.check(nl and "verdict=reject, rule=blocked_recipient_domains" in nl[0],
                "non-SMTP submission refused at end of message: %s" % nl)
        time.sleep(1)
        F.check("Server configuration error" not in pf.log() and
                "can't reject recipient" not in pf.log(),
                "Postfix saw no RCPT-stage reject for the sendmail(1) submission")
        # What a reject at end of message means for sendmail(1): sendmail itself
        # already exited 0, so Postfix bounces the message to the sender.
        F.check("milter-reject: END-OF-MESSAGE" in pf.log() and "status=bounced (recipient domain "
                "blocked.example is blocked on this relay)" in pf.log(),
                "the refused sendmail(1) submission is bounced to its sender")

        # Postfix logged the milter's refusals.
        F.check("milter-reject: MAIL from" in pf.log() and
                "5.7.1 sender x@y.example is not allowed" in pf.log(),
                "Postfix logs milter-reject with the milter's text")
    except Exception as e:
        F.check(False, "postfix integration: %s" % e)
    finally:
        if pf:
            pf.stop()
            print("---- postfix maillog (tail)\n" + pf.log()[-2500:])
        if m:
            m.stop()
            print("---- milter log (tail)\n" + m.log()[-2500:])
        t.close()
    F.exit()


if __name__ == "__main__":
    main()
