#!/usr/bin/env python3
"""The demo (README's first command runs it through scripts/demo.sh): the whole
o365relay path on this machine's loopback, on the embedded default set-up:
a private Postfix instance (never the system's) with o365relay-milter and the
o365relay-transport pipe(8) services wired in as conf/ recommends, and fakes of
Office 365, Microsoft Graph and Entra ID: the accounts noreply and alerts deliver
by SMTP, the account graphy by Microsoft Graph. It sends a handful of messages and says what happened
to each and where to look. It stops everything it started; the directory with
the logs and the fake mailbox is kept for reading.

usage: demo.py BUILD_DIR
"""
import glob
import os
import sys
import time

os.environ["KEEP_TEST_DIRS"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import GRAPH_MAILBOX, Stack  # noqa: E402

BOLD = "\033[1m" if sys.stdout.isatty() else ""
END = "\033[0m" if sys.stdout.isatty() else ""


def title(n, text):
    print("\n%s%d. %s%s" % (BOLD, n, text, END))


def lines_about(text, needle, limit=4):
    return [l for l in text.splitlines() if needle in l][-limit:]


def show(prefix, lines):
    for l in lines:
        print("   %s %s" % (prefix, l))


def mailbox_file(st, mid):
    for j in sorted(glob.glob(os.path.join(st.env.o365_state, "mailbox", "*.eml"))):
        with open(j, "rb") as f:
            if mid.encode() in f.read():
                return j
    return None


def send_bcc(st, sender, to, bcc, subject):
    """A message To: `to` with `bcc` only in the envelope (as a mail client's Bcc)."""
    return st.send(sender, [to, bcc], subject, to_header=to)


def qid_of(r):
    return r["text"].rsplit(" ", 1)[-1] if r["status"] == "queued" else None


def main():
    build = sys.argv[1]
    print("Starting fake Entra ID, fake Office 365, fake Microsoft Graph, o365relay-milter and "
          "a private Postfix...")
    st = Stack(build, "demo", policy="messages_per_minute = 2\n", graph=True)
    pf = st.postfix
    ok = True
    try:
        print("   Postfix smtpd on 127.0.0.1:%d, milter on 127.0.0.1:%d, fake Office 365 on "
              "127.0.0.1:%d, fake Graph on 127.0.0.1:%d, fake Entra on 127.0.0.1:%d" %
              (st.smtpd_port, st.milter_port, st.env.o365_port, st.env.graph_port,
               st.env.entra_port))
        print("   config: %s (accounts noreply, alerts: method = smtp; graphy: method = graph; "
              "messages_per_minute = 2)" % st.config)

        title(1, "An application sends as app1@apps.contoso.com (allowed for account noreply)")
        r = st.send("app1@apps.contoso.com", ["bob@example.org"], "Invoice 42",
                    from_header="Billing <app1@apps.contoso.com>")
        qid = qid_of(r)
        pf.wait_for(lambda: st.delivered_ids().get(r["message_id"]) == 1, 60, "delivery")
        print("   smtpd said: 250 %s" % r["text"])
        print("   -> delivered to Office 365 as mailbox noreply@contoso.com, tagged "
              "X-O365Relay-Account: noreply")
        show("maillog:", lines_about(pf.log_text(), qid + ": to=", 1))
        show("o365relay.log:", lines_about(st.transport_log(), qid + ": to=", 1))
        print("   fake mailbox: %s" % mailbox_file(st, r["message_id"]))

        title(2, "A stranger sends as intruder@example.net (no account may use it)")
        r = st.send("intruder@example.net", ["bob@example.org"], "Hello")
        print("   -> refused in the SMTP session: %d %s" % (r["code"], r["text"]))
        show("o365relay.log:", lines_about(st.transport_log(), "intruder@example.net", 1))
        ok &= r["status"] == "refused"

        title(3, "The alerts account sends 3 messages in a minute (limit: 2 per minute)")
        for i in range(3):
            r = st.send("alerts@contoso.com", ["ops@example.org"], "Alert %d" % (i + 1))
            if r["status"] == "queued":
                print("   message %d: accepted (%s)" % (i + 1, r["text"]))
            else:
                print("   message %d: -> %d %s" % (i + 1, r["code"], r["text"]))
        ok &= r["status"] == "refused" and r["code"] == 451
        print("   (4xx: a well-behaved client retries later; Microsoft would have throttled "
              "the mailbox)")

        title(4, "Office 365 answers '451 4.7.500 Server busy' once, then recovers")
        pf.wait_for(lambda: pf.queue() == [], 30, "earlier messages to leave the queue")
        st.set_faults([{"stage": "eod", "mailbox": "noreply@contoso.com", "count": 1,
                        "reply": "451 4.7.500 Server busy. Please try again later"}])
        r = st.send("noreply@contoso.com", ["carol@example.org"], "Report")
        qid = qid_of(r)
        pf.wait_for(lambda: "status=deferred" in "\n".join(lines_about(pf.log_text(), qid)),
                    60, "deferral")
        print("   first attempt deferred; Postfix kept it queued:")
        show("maillog:", [l for l in lines_about(pf.log_text(), qid + ": to=")
                          if "deferred" in l][:1])
        pf.wait_for(lambda: st.delivered_ids().get(r["message_id"]) == 1, 60, "retry")
        print("   -> delivered on Postfix's retry:")
        show("maillog:", [l for l in lines_about(pf.log_text(), qid + ": to=")
                          if "status=sent" in l][:1])
        print("   fake mailbox: %s" % mailbox_file(st, r["message_id"]))

        title(5, "The graphy account (method = graph) sends to two recipients, one of them Bcc")
        r = send_bcc(st, GRAPH_MAILBOX, "dave@example.org", "erin@example.org", "Quarterly")
        qid = qid_of(r)
        pf.wait_for(lambda: st.graph_received("dave@example.org") and
                    st.graph_received("erin@example.org"), 60, "Graph delivery")
        print("   -> delivered through Microsoft Graph (draft with the envelope's recipients, "
              "then send), not through SMTP; each recipient once, tagged "
              "X-O365Relay-Account: graphy")
        show("maillog:", lines_about(pf.log_text(), qid + ": to=", 2))
        show("o365relay.log:", lines_about(st.transport_log(), qid + ": to=", 2))
        print("   fake Graph mailboxes: %s/mailbox/{dave,erin}@example.org/" % st.env.graph_state)
        ok &= len(st.graph_received("erin@example.org")) == 1

        title(6, "The shared token cache (o365relayctl token status)")
        import subprocess
        out = subprocess.run([st.ctl_bin, "-c", st.config, "token", "status"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
        show("", out.splitlines())
        print("   Entra token requests so far: %d (one per account and audience, shared by the "
              "milter and every transport run)" % st.env.entra_token_requests())

        pf.wait_for(lambda: pf.queue() == [], 30, "empty queue")
        print("\nQueue empty. Where to look:")
        print("   Postfix mail log:     %s" % pf.maillog)
        print("   o365relay log:        %s" % st.log)
        print("   fake Office 365 mail: %s/mailbox/" % st.env.o365_state)
        print("   fake Graph mail:      %s/mailbox/" % st.env.graph_state)
        print("   Postfix config:       %s/ (main.cf, master.cf)" % pf.conf)
    except Exception as e:  # noqa: BLE001
        ok = False
        print("demo failed: %s" % e)
        print(pf.log_tail(20) if pf else "")
    finally:
        st.close()
        print("Everything the demo started is stopped; its files stay in %s" % st.dir)
    print("demo %s" % ("completed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
