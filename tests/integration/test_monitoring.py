#!/usr/bin/env python3
"""Monitoring through a real Postfix with two accounts (issue 10): after a mixed
run (sent, deferred by a lost connection, deferred by a 432 4.3.2 throttle,
bounced by a 550 5.1.1, the bounce itself sent through the null-sender
account), `o365relayctl status` and `o365relayctl metrics` show exactly the
counts the run produced, `promtool check metrics` accepts the metrics, and the
counters files belong to the service user with mode 0600 (the milter, the
transports run by pipe(8) and o365relayctl all write or read them).

usage: test_monitoring.py BUILD_DIR
"""
import os
import pwd
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import SERVICE_USER, Stack  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def parse_metrics(text):
    """{(name, frozenset(labels)): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$', line)
        if not m:
            raise AssertionError("bad sample line: %r" % line)
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def get(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())))


# What the run below must leave in the counters: (metric, labels) -> value.
EXPECTED = {
    ("o365relay_deliveries_sent_total", "noreply", ()): 5,
    ("o365relay_recipients_sent_total", "noreply", ()): 5,
    ("o365relay_recipients_last_24h", "noreply", ()): 5,
    ("o365relay_deliveries_deferred_total", "noreply", (("reason", "network"),)): 1,
    ("o365relay_deliveries_deferred_total", "noreply", (("reason", "throttle"),)): 0,
    ("o365relay_deliveries_bounced_total", "noreply", (("reason", "recipient"),)): 0,
    ("o365relay_throttles_total", "noreply", (("kind", "smtp_4.3.2"),)): 0,
    ("o365relay_deliveries_sent_total", "alerts", ()): 1,
    ("o365relay_recipients_sent_total", "alerts", ()): 1,
    ("o365relay_recipients_last_24h", "alerts", ()): 1,
    ("o365relay_deliveries_deferred_total", "alerts", (("reason", "throttle"),)): 1,
    ("o365relay_deliveries_deferred_total", "alerts", (("reason", "network"),)): 0,
    ("o365relay_deliveries_bounced_total", "alerts", (("reason", "recipient"),)): 1,
    ("o365relay_throttles_total", "alerts", (("kind", "smtp_4.3.2"),)): 1,
    ("o365relay_throttles_total", "alerts", (("kind", "smtp_4.7.500"),)): 0,
    ("o365relay_token_failures_total", "noreply", ()): 0,
    ("o365relay_token_failures_total", "alerts", ()): 0,
    ("o365relay_token_usable", "noreply", ()): 1,
    ("o365relay_token_usable", "alerts", ()): 1,
}


def ctl(st, *args):
    p = subprocess.run([st.ctl_bin, "-c", st.config, *args], capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def mismatches(st):
    rc, out, err = ctl(st, "metrics")
    if rc != 0:
        return ["metrics exit %d: %s" % (rc, err)]
    m = parse_metrics(out)
    bad = []
    for (name, account, extra), want in EXPECTED.items():
        got = get(m, name, account=account, **dict(extra))
        if got != want:
            bad.append("%s{account=%s,%s} = %s, expected %s" % (name, account, extra, got, want))
    return bad


def wait_delivered(st, pf, message_id, what):
    pf.wait_for(lambda: st.delivered_ids().get(message_id) == 1, 60, what)


def deferred_logged(pf, rcpt, text):
    """pipe(8) logged a deferral of `rcpt` whose reason contains `text`."""
    return any("postfix/pipe" in l and "to=<%s>" % rcpt in l and "status=deferred" in l and
               text in l for l in pf.log_text().splitlines())


def main():
    build = sys.argv[1]
    st = Stack(build, "monitoring", policy="messages_per_minute = 0\n")
    try:
        pf = st.postfix
        # 1. noreply: sent (one recipient), then one message to two recipients
        #    (two deliveries: o365_destination_recipient_limit = 1).
        r = st.send("app1@apps.contoso.com", ["bob@example.org"], "one",
                    from_header="app1@apps.contoso.com")
        wait_delivered(st, pf, r["message_id"], "noreply: first message")
        r = st.send("noreply@contoso.com", ["carol@example.org", "dave@example.org"], "two")
        pf.wait_for(lambda: st.delivered_ids().get(r["message_id"]) == 2, 60,
                    "noreply: message to two recipients")

        # 2. noreply: the connection is lost after DATA: deferred (network), then sent.
        st.set_faults([{"stage": "data", "mailbox": "noreply@contoso.com",
                        "action": "disconnect", "count": 1}])
        r = st.send("noreply@contoso.com", ["erin@example.org"], "lost connection")
        # The fault fires once: Postfix may retry (and deliver) before the queue is
        # looked at, so the deferral is read from pipe(8)'s log line.
        pf.wait_for(lambda: deferred_logged(pf, "erin@example.org", "lost connection"), 60,
                    "noreply: deferral (4.4.2)")
        st.set_faults([])
        pf.flush()
        wait_delivered(st, pf, r["message_id"], "noreply: delivered after the flush")

        # 3. alerts: 432 4.3.2 (concurrent connections): deferred (throttle), then sent.
        st.set_faults([{"stage": "mail", "mailbox": "alerts@contoso.com", "count": 1,
                        "reply": "432 4.3.2 Concurrent connections limit exceeded. Visit "
                                 "https://aka.ms/concurrent_sending for more information."}])
        r = st.send("alerts@contoso.com", ["frank@example.org"], "throttled")
        pf.wait_for(lambda: deferred_logged(pf, "frank@example.org", "Concurrent connections"), 60,
                    "alerts: deferral (432 4.3.2)")
        st.set_faults([])
        pf.flush()
        wait_delivered(st, pf, r["message_id"], "alerts: delivered after the flush")

        # 4. alerts: 550 5.1.1 bounces; the bounce goes out through noreply (null sender).
        st.set_faults([{"stage": "rcpt", "rcpt": "gone@example.org",
                        "reply": "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"}])
        r = st.send("alerts@contoso.com", ["gone@example.org"], "bounce me")

        def bounce_delivered():
            return any(e["mail_from"] == "noreply@contoso.com" and
                       e["rcpt_to"] == ["alerts@contoso.com"] for e, _ in st.delivered())
        pf.wait_for(bounce_delivered, 60, "the bounce through the null-sender account")
        st.set_faults([])
        pf.wait_for(lambda: pf.queue() == [], 60, "empty queue")
        # The transport writes its counters right after the fake accepted the message.
        try:
            pf.wait_for(lambda: not mismatches(st), 20, "the counters of the run")
        except Exception:
            pass
        bad = mismatches(st)
        check(not bad, "metrics show exactly the run's counts%s" %
              ("" if not bad else ": " + "; ".join(bad)))

        # 5. metrics: promtool accepts them; token requests = what the fake Entra saw.
        rc, out, err = ctl(st, "metrics")
        check(rc == 0 and err == "", "metrics exit 0, nothing on stderr (%d %s)" % (rc, err))
        promtool = shutil.which("promtool")
        check(promtool is not None, "promtool installed (scripts/install-deps.sh: prometheus)")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=out.encode(),
                               capture_output=True, timeout=60)
            check(p.returncode == 0, "promtool check metrics: %s%s" %
                  (p.stdout.decode(), p.stderr.decode()))
        m = parse_metrics(out)
        requests = sum(get(m, "o365relay_token_requests_total", account=a) or 0
                       for a in ("noreply", "alerts"))
        check(requests == st.env.entra_token_requests(),
              "token requests counted (%d) = requests the fake Entra saw (%d)" %
              (requests, st.env.entra_token_requests()))
        check((get(m, "o365relay_messages_last_minute", account="noreply") or 0) <= 5,
              "messages in the last minute never more than sent")

        # 6. status: the table and the last errors with their fixes.
        rc, out, err = ctl(st, "status")
        print(out)
        check(rc == 0, "status exit 0 (%d %s)" % (rc, err))
        rows = {line.split()[0]: line for line in out.splitlines()[1:3] if line.strip()}
        check(re.match(r"^noreply +smtp +valid \d+ min +5/5 +1/1 +0/0 +0 +\d+/0 +5/10000 +"
                       r"\d+/30$", rows.get("noreply", "")) is not None,
              "status row of noreply: %r" % rows.get("noreply"))
        check(re.match(r"^alerts +smtp +valid \d+ min +1/1 +1/1 +1/1 +1 +\d+/0 +1/10000 +"
                       r"\d+/30$", rows.get("alerts", "")) is not None,
              "status row of alerts: %r" % rows.get("alerts"))
        check(re.search(r"alerts: last failed delivery .*, bounced \(recipient\): 5\.1\.1 .*"
                        r"RecipNotFound.*\n  fix: \S", out) is not None,
              "alerts: the last failed delivery with its fix")
        check(re.search(r"noreply: last failed delivery .*, deferred \(network\): 4\.4\.2 .*"
                        r"\n  fix: \S", out) is not None,
              "noreply: the last failed delivery with its fix")
        rc, _, _ = ctl(st, "token", "status")
        check(rc == 0, "token status exit 0 with both tokens fresh (%d)" % rc)

        # 7. the counters files: the service user's, 0600, in a 0700 directory.
        user = pwd.getpwnam(SERVICE_USER)
        cdir = os.path.join(st.state_dir, "counters")
        sd = os.stat(cdir)
        check(sd.st_uid == user.pw_uid and sd.st_mode & 0o777 == 0o700,
              "counters/ is the service user's, 0700")
        for a in ("noreply", "alerts"):
            s = os.stat(os.path.join(cdir, a + ".cnt"))
            check(s.st_uid == user.pw_uid and s.st_mode & 0o777 == 0o600,
                  "counters/%s.cnt is the service user's, 0600" % a)
        check("count lost" not in st.transport_log(), "no count lost")
    finally:
        if FAILURES:
            print("--- maillog tail ---\n" + st.postfix.log_tail(40) if st.postfix else "")
            print("--- o365relay.log tail ---\n" +
                  "".join(st.transport_log().splitlines(True)[-30:]))
        st.close()
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
