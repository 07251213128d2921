#!/usr/bin/env python3
"""End to end with a real Postfix: smtpd + o365relay-milter + pipe(8) ->
o365relay-transport -> fake Office 365, tokens from the fake Entra.

Checks (issue 5): allowed mail is delivered with the tag header; forbidden
mail is refused in the SMTP session with the milter's text; a temporary Office
365 failure keeps the mail queued with Microsoft's reason visible in
`postqueue -j`, and after recovery a queue flush delivers it exactly once; a
permanent refusal bounces to the sender (the bounce itself goes out through
the null-sender account); no token reaches any log.

usage: test_end_to_end.py BUILD_DIR
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def main():
    build = sys.argv[1]
    st = Stack(build, "e2e", policy="messages_per_minute = 0\n")
    try:
        pf = st.postfix

        # 1. allowed mail: delivered with the tag header, exactly once
        r = st.send("app1@apps.contoso.com", ["bob@example.org"], "allowed",
                    from_header="App One <app1@apps.contoso.com>",
                    extra_headers="X-O365Relay-Account: forged\r\n")
        check(r["status"] == "queued", "allowed mail accepted by smtpd: %s" % r)
        pf.wait_for(lambda: st.delivered_ids().get(r["message_id"]) == 1, 60,
                    "delivery of the allowed message")
        env, data = [m for m in st.delivered() if r["message_id"].encode() in m[1]][0]
        check(env["mailbox"] == "noreply@contoso.com", "sent as the noreply mailbox")
        check(env["rcpt_to"] == ["bob@example.org"], "to bob")
        headers = data.split(b"\r\n\r\n", 1)[0]
        check(b"X-O365Relay-Account: noreply" in headers, "tag header added")
        check(b"forged" not in headers, "forged tag header deleted")
        pf.wait_for(lambda: "status=sent" in st.transport_log(), 10, "transport log line")
        check("account=noreply" in st.transport_log() and "dsn=2.0.0" in st.transport_log(),
              "transport log line in Postfix's manner")

        # 2. forbidden mail: refused in the session with the milter's text
        r = st.send("intruder@example.net", ["bob@example.org"], "forbidden")
        check(r["status"] == "refused" and r["code"] == 550 and
              "not allowed to send through this relay" in r["text"],
              "unknown sender refused in session: %s %s" % (r["code"], r["text"]))
        r = st.send("alerts@contoso.com", ["bob@example.org"], "misaligned",
                    from_header="ceo@contoso.com")
        check(r["status"] == "refused" and r["code"] == 550 and "ceo@contoso.com" in r["text"],
              "misaligned From refused in session: %s %s" % (r["code"], r["text"]))

        # 3. temporary Office 365 failure: stays queued with Microsoft's reason
        st.set_faults([{"stage": "eod", "reply": "451 4.7.500 Server busy. Please try again later"}])
        r = st.send("alerts@contoso.com", ["carol@example.org"], "deferred")
        check(r["status"] == "queued", "message for the busy server accepted")

        def deferred_with_reason():
            for m in pf.queue():
                for rc in m.get("recipients", []):
                    if "Server busy" in rc.get("delay_reason", ""):
                        return True
            return False
        pf.wait_for(deferred_with_reason, 60, "deferral visible in postqueue -j")
        q = pf.queue()
        check(len(q) == 1 and q[0]["queue_name"] in ("deferred", "active"),
              "mail stays queued: %s" % [(m["queue_name"], m["recipients"]) for m in q])
        reason = q[0]["recipients"][0]["delay_reason"] if q else ""
        check("4.7.500" in reason and "Server busy" in reason,
              "Microsoft's reason in postqueue -j: %s" % reason)
        check(r["message_id"] not in st.delivered_ids(), "not delivered while failing")
        # recovery, then flush
        st.set_faults([])
        pf.flush()
        pf.wait_for(lambda: st.delivered_ids().get(r["message_id"]) == 1, 60,
                    "delivery after recovery")
        pf.wait_for(lambda: pf.queue() == [], 30, "empty queue")
        check(True, "delivered after flush, queue empty")

        # 4. a permanent refusal bounces; the bounce goes out via the null-sender account
        st.set_faults([{"stage": "rcpt", "rcpt": "gone@example.org",
                        "reply": "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"}])
        r = st.send("alerts@contoso.com", ["gone@example.org"], "bounce me")
        check(r["status"] == "queued", "message for an unknown recipient accepted")
        pf.wait_for(lambda: "dsn=5.1.1" in pf.log_text(), 60, "bounce of gone@example.org")
        check("status=bounced" in pf.log_text(), "Postfix bounced the refused recipient")

        def bounce_delivered():
            return any(e["mail_from"] == "noreply@contoso.com" and
                       e["rcpt_to"] == ["alerts@contoso.com"] for e, _ in st.delivered())
        pf.wait_for(bounce_delivered, 60, "the bounce to reach the sender through Office 365")
        check(True, "bounce sent with MAIL FROM the null_sender_account's mailbox")

        # 5. no token anywhere in the logs
        logs = pf.log_text() + st.transport_log()
        tokens = st.env.issued_tokens()
        check(len(tokens) >= 1, "the fake Entra issued %d token(s)" % len(tokens))
        check(not any(t in logs for t in tokens), "no access token in the mail log or o365relay log")
        # The milter's refresher and every transport share one cache: one token
        # request per account (2), however many deliveries.
        check(st.env.entra_token_requests() == 2,
              "%d token requests for 2 accounts and %d deliveries (shared cache)" %
              (st.env.entra_token_requests(), len(st.delivered())))
    finally:
        if FAILURES:
            print("--- maillog tail ---\n" + st.postfix.log_tail(40) if st.postfix else "")
            print("--- o365relay.log tail ---\n" + "".join(st.transport_log().splitlines(True)[-20:]))
        st.close()
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
