#!/usr/bin/env python3
"""Soak through a real Postfix: 500 messages (about 1 in 10 refused by policy,
some with two recipients) while the fake Office 365 injects temporary faults
into about 10% of connections at every stage (disconnect at greeting, 421 at
MAIL, 451 at RCPT, 454 at AUTH, 451 after end of data).

At the end: every accepted message reached every recipient exactly once, every
refused one was refused in the SMTP session (and never delivered), none lost,
Postfix's queue empty. Prints the figures: delivered / refused / lost /
duplicated / deferrals seen.

usage: test_soak.py BUILD_DIR [N]
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack  # noqa: E402

FAULTS = [
    {"stage": "greeting", "action": "disconnect", "probability": 0.02},
    {"stage": "auth", "reply": "454 4.7.0 Temporary authentication failure", "probability": 0.02},
    {"stage": "mail", "reply": "421 4.3.2 Service not available, closing transmission channel",
     "probability": 0.02},
    {"stage": "rcpt", "reply": "451 4.4.0 Temporary server error. Please try again later",
     "probability": 0.02},
    {"stage": "eod", "reply": "451 4.7.500 Server busy. Please try again later",
     "probability": 0.02},
]


def main():
    build = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    st = Stack(build, "soak", faults=FAULTS)
    failures = []
    try:
        plan = []
        for i in range(n):
            if i % 10 == 7:
                plan.append(("stranger%d@example.net" % i, ["r%d@example.org" % i], "refuse"))
            elif i % 10 == 3:
                plan.append(("alerts@contoso.com",
                             ["a%d@example.org" % i, "b%d@example.com" % i], "accept"))
            else:
                plan.append(("app%d@apps.contoso.com" % (i % 7), ["r%d@example.org" % i],
                             "accept"))
        results = [None] * n
        lock = threading.Lock()
        nxt = [0]

        def worker():
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= n:
                    return
                sender, rcpts, _ = plan[i]
                results[i] = st.send(sender, rcpts, "soak %d" % i)

        t0 = time.time()
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        submitted = time.time() - t0

        expected = {}  # message id -> recipients
        refused_ok = refused_wrong = accepted_wrong = 0
        for (sender, rcpts, want), r in zip(plan, results):
            if want == "refuse":
                if r["status"] == "refused" and r["code"] == 550:
                    refused_ok += 1
                else:
                    refused_wrong += 1
            elif r["status"] == "queued":
                expected[r["message_id"]] = rcpts
            else:
                accepted_wrong += 1
                failures.append("allowed message refused: %s" % r)

        def all_delivered():
            got = st.delivered_ids()
            return sum(got.values()) >= sum(len(v) for v in expected.values())

        deadline = time.time() + 600
        while time.time() < deadline and not (all_delivered() and st.postfix.queue() == []):
            time.sleep(1)
        elapsed = time.time() - t0

        # per (message, recipient) counts
        counts = {}
        for env, data in st.delivered():
            mid = None
            for line in data.split(b"\r\n"):
                if not line:
                    break
                if line.lower().startswith(b"message-id:"):
                    mid = line.split(b":", 1)[1].strip().decode()
            for rc in env["rcpt_to"]:
                counts[(mid, rc)] = counts.get((mid, rc), 0) + 1
        want_pairs = {(mid, rc) for mid, rcpts in expected.items() for rc in rcpts}
        delivered = sum(1 for p in want_pairs if counts.get(p, 0) >= 1)
        lost = sum(1 for p in want_pairs if counts.get(p, 0) == 0)
        duplicated = sum(1 for p in want_pairs if counts.get(p, 0) > 1)
        unexpected = sum(1 for p in counts if p not in want_pairs)
        log = st.postfix.log_text()
        deferrals = log.count("status=deferred")
        bounces = log.count("status=bounced")
        stats = st.env.stats()
        queue_left = len(st.postfix.queue())
        print("soak: %d messages submitted in %.1f s, all settled after %.1f s" %
              (n, submitted, elapsed))
        print("soak: accepted %d messages (%d recipient deliveries expected); refused in session "
              "%d (wrong: %d)" % (len(expected), len(want_pairs), refused_ok, refused_wrong))
        print("soak: delivered %d, lost %d, duplicated %d, unexpected %d, bounced %d, queue left %d"
              % (delivered, lost, duplicated, unexpected, bounces, queue_left))
        print("soak: fake Office 365: %d connections, %d faults fired (%.1f%% of connections), "
              "%d deferrals logged by Postfix" %
              (stats["connections"], stats["faults_fired"],
               100.0 * stats["faults_fired"] / max(1, stats["connections"]), deferrals))
        for cond, what in [(lost == 0, "no message lost"), (duplicated == 0, "no duplicate"),
                           (unexpected == 0, "nothing unexpected delivered"),
                           (refused_wrong == 0, "every forbidden message refused in session"),
                           (accepted_wrong == 0, "every allowed message accepted"),
                           (bounces == 0, "nothing bounced"),
                           (queue_left == 0, "queue empty"),
                           (stats["faults_fired"] > 0, "faults were injected"),
                           (deferrals > 0, "Postfix deferred and retried")]:
            print(("ok   " if cond else "FAIL ") + what)
            if not cond:
                failures.append(what)
    finally:
        if failures:
            print(st.postfix.log_tail(30))
        st.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
