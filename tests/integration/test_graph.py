#!/usr/bin/env python3
"""End to end with a real Postfix and two accounts side by side: `noreply`
(method = smtp, fake Office 365) and `graphy` (method = graph, fake Microsoft
Graph), wired as conf/ recommends (o365 entry with recipient limit 1, o365graph
entry with recipient limit 100).

Checks (issue 9): mail from each sender reaches the right fake through the right
method, tagged with its account, exactly once per envelope recipient; a Graph
message whose envelope matches its headers goes out unchanged in one sendMail; a
Bcc recipient (envelope only) receives it; a header recipient who is not an
envelope recipient does not; the milter refuses at SMTP time a message over the
3 MB Graph limit for the Graph account while the same size passes for the SMTP
account; a Graph account problem (403 ErrorAccessDenied) keeps the mail queued
with Graph's reason and a flush after the fix delivers it once; no token in any
log.

usage: test_graph.py BUILD_DIR
"""
import base64
import os
import smtplib
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import GRAPH_MAILBOX, Stack  # noqa: E402

FAILURES = []
GRAPH_LIMIT = 3 * 1024 * 1024  # bytes of MIME Graph accepts in one request (4 MB base64)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def header_block(data):
    return data.split(b"\r\n\r\n", 1)[0]


def copies(st, rcpt, mid):
    """Copies of message `mid` the recipient got through the fake Graph."""
    return [d for d in st.graph_received(rcpt) if mid.encode() in header_block(d)]


def smtp_copies(st, rcpt, mid):
    return [e for e, d in st.delivered() if mid.encode() in header_block(d) and
            rcpt in e["rcpt_to"]]


def main():
    build = sys.argv[1]
    st = Stack(build, "graph", policy="messages_per_minute = 0\n", graph=True)
    try:
        pf = st.postfix

        # 1. the SMTP account: through fake Office 365 only
        r1 = st.send("noreply@contoso.com", ["bob@example.org"], "via smtp")
        check(r1["status"] == "queued", "SMTP account's mail accepted: %s" % r1)

        # 2. the Graph account, envelope == headers: one sendMail, To/Cc intact
        r2 = st.send(GRAPH_MAILBOX, ["ann@example.org", "ben@example.org"], "via graph",
                     extra_headers="Cc: ben@example.org\r\n")
        check(r2["status"] == "queued", "Graph account's mail accepted: %s" % r2)

        # 3. the Graph account, envelope != headers: a Bcc-only recipient (hidden) and a
        #    header recipient who is not an envelope recipient (outsider)
        mid3_rcpts = ["cat@example.org", "hidden@example.org"]
        r3 = send_raw(st, "app@graph.contoso.com", mid3_rcpts, "To: cat@example.org\r\n",
                      "bcc only")
        check(r3["status"] == "queued", "Graph mail with a Bcc-only recipient accepted: %s" % r3)
        r4 = send_raw(st, "app@graph.contoso.com", ["dan@example.org", "eve@example.org"],
                      "To: dan@example.org, outsider@example.org\r\n", "outsider test")
        check(r4["status"] == "queued", "Graph mail with a header-only recipient accepted")

        want = {r1["message_id"]: ["bob@example.org"],
                r2["message_id"]: ["ann@example.org", "ben@example.org"],
                r3["message_id"]: mid3_rcpts,
                r4["message_id"]: ["dan@example.org", "eve@example.org"]}

        def settled():
            return (len(smtp_copies(st, "bob@example.org", r1["message_id"])) >= 1 and
                    all(copies(st, rc, mid) for mid, rcs in want.items()
                        if mid != r1["message_id"] for rc in rcs) and pf.queue() == [])
        pf.wait_for(settled, 90, "delivery of the four messages")

        # SMTP account
        check(len(smtp_copies(st, "bob@example.org", r1["message_id"])) == 1,
              "SMTP account's mail reached fake Office 365 once")
        check(not copies(st, "bob@example.org", r1["message_id"]),
              "SMTP account's mail did not go through Graph")
        env, data = [m for m in st.delivered() if r1["message_id"].encode() in m[1]][0]
        check(env["mailbox"] == "noreply@contoso.com", "SMTP: sent as the noreply mailbox")
        check(b"X-O365Relay-Account: noreply" in header_block(data), "SMTP: tagged noreply")

        # Graph account: nothing of it through Office 365
        for mid in (r2["message_id"], r3["message_id"], r4["message_id"]):
            check(not any(mid.encode() in d for _e, d in st.delivered()),
                  "Graph mail %s did not go through SMTP" % mid)
        for mid, rcs in want.items():
            if mid == r1["message_id"]:
                continue
            for rc in rcs:
                got = copies(st, rc, mid)
                check(len(got) == 1, "%s got %s exactly once (%d)" % (rc, mid, len(got)))
                if got:
                    check(b"X-O365Relay-Account: graphy" in header_block(got[0]),
                          "%s's copy tagged graphy" % rc)
        dl = {d["id"]: d for d in st.graph_deliveries()}
        by_mid = {}
        for d in dl.values():
            mime = base64.b64decode(d["mime_b64"])
            for mid in want:
                if mid.encode() in header_block(mime):
                    by_mid.setdefault(mid, []).append(d)
        d2 = by_mid.get(r2["message_id"], [])
        check(len(d2) == 1 and d2[0]["method"] == "sendMail" and d2[0]["mailbox"] == GRAPH_MAILBOX,
              "envelope == headers: one sendMail as %s (%s)" %
              (GRAPH_MAILBOX, [(d["method"], d["mailbox"]) for d in d2]))
        ann = copies(st, "ann@example.org", r2["message_id"])
        check(ann and b"Cc: ben@example.org" in header_block(ann[0]),
              "recipients see the Cc as written")
        check(copies(st, "hidden@example.org", r3["message_id"]) != [],
              "a Bcc recipient (envelope only) received it")
        check(st.graph_received("outsider@example.org") == [],
              "a header recipient who is not an envelope recipient did not")
        d4 = by_mid.get(r4["message_id"], [])
        check(len(d4) == 1 and sorted(d4[0]["recipients"]) ==
              ["dan@example.org", "eve@example.org"],
              "the draft went to the envelope recipients only: %s" %
              [d.get("recipients") for d in d4])
        stats = st.env.graph_stats()
        check(stats.get("drafts_live", 0) == 0, "no draft left behind")

        # 4. size: over 3 MB refused at SMTP time for the Graph account only
        big = "x" * 998 + "\n"
        body = big * (GRAPH_LIMIT // 1000 + 50)
        r = st.send(GRAPH_MAILBOX, ["big@example.org"], "too big for graph", body=body)
        check(r["status"] == "refused" and r["code"] == 552 and "Graph" in r["text"],
              "Graph account: over 3 MB refused at SMTP time: %s %s" % (r["code"], r["text"]))
        r = st.send("noreply@contoso.com", ["big@example.org"], "fine for smtp", body=body)
        check(r["status"] == "queued", "SMTP account: the same size accepted: %s" % r)
        pf.wait_for(lambda: smtp_copies(st, "big@example.org", r["message_id"]) != [], 60,
                    "delivery of the large SMTP message")

        # 5. account-level Graph failure: queued with Graph's reason, delivered after the fix
        st.env.set_graph_config({}, mailboxes={GRAPH_MAILBOX: {
            "send_as": ["@graph.contoso.com"], "apps": ["not-this-app"]}})
        r = st.send(GRAPH_MAILBOX, ["fay@example.org"], "access denied first")
        check(r["status"] == "queued", "mail for the denied Graph account accepted")

        def deferred_with_reason():
            return any("ErrorAccessDenied" in rc.get("delay_reason", "")
                       for m in pf.queue() for rc in m.get("recipients", []))
        pf.wait_for(deferred_with_reason, 60, "ErrorAccessDenied visible in postqueue -j")
        check(copies(st, "fay@example.org", r["message_id"]) == [], "nothing sent while denied")
        st.env.set_graph_config({}, mailboxes={GRAPH_MAILBOX: {"send_as": ["@graph.contoso.com"]}})
        pf.flush()
        pf.wait_for(lambda: copies(st, "fay@example.org", r["message_id"]) != [], 60,
                    "delivery after the fix")
        check(len(copies(st, "fay@example.org", r["message_id"])) == 1,
              "delivered exactly once after the fix")
        check("relay=localhost[" in st.transport_log() and "account=graphy" in
              st.transport_log(), "transport log names the Graph relay and the account")

        # 6. no token anywhere in the logs
        logs = st.transport_log() + pf.log_text()
        check("eyJ" not in logs and "Bearer " not in logs, "no token in any log")
    finally:
        if FAILURES:
            print(st.postfix.log_tail(40) if st.postfix else "")
            print(st.transport_log()[-4000:])
        st.close()
    print("%d failures" % len(FAILURES))
    return 1 if FAILURES else 0


def send_raw(st, sender, rcpts, to_header, subject):
    """Like Stack.send, with the To header given (it may name non-recipients)."""
    mid = "<%s@test.o365relay>" % uuid.uuid4().hex
    msg = ("From: %s\r\n%sSubject: %s\r\nMessage-ID: %s\r\n\r\nHello.\r\n" %
           (sender, to_header, subject, mid))
    c = smtplib.SMTP("127.0.0.1", st.smtpd_port, timeout=30)
    try:
        c.ehlo("client.test")
        c.sendmail(sender, rcpts, msg.encode())
        return {"status": "queued", "message_id": mid}
    except smtplib.SMTPException as e:
        return {"status": "refused", "message_id": mid, "text": str(e)}
    finally:
        try:
            c.quit()
        except (smtplib.SMTPException, OSError):
            pass


if __name__ == "__main__":
    sys.exit(main())
