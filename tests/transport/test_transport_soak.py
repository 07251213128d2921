#!/usr/bin/env python3
"""Soak test: N messages (default 500) through the REAL o365relay-transport
against fake_o365.py with about 10% random faults at every stage, retried the
way Postfix would (exit 75 -> try again later), 3 deliveries in parallel.

Usage: test_transport_soak.py /path/to/o365relay-transport [-n 500] [--seed 7]

Passes when every message is delivered exactly once and byte-exact, no delivery
ever returned a permanent status (all injected faults are temporary), every
status line agrees with its exit status, and the transport log holds no token.
"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MAILBOX  # noqa: E402

P = 0.012  # per rule; ~9 rules reached per delivery -> roughly 10% of deliveries hit one
FAULTS = [
    {"stage": "greeting", "reply": "421 4.3.2 Service not available", "probability": P},
    {"stage": "ehlo", "action": "disconnect", "probability": P},
    {"stage": "starttls", "reply": "454 4.7.0 TLS not available", "probability": P},
    {"stage": "tls", "action": "disconnect", "probability": P},
    {"stage": "auth", "reply": "451 4.7.0 Temporary server error", "probability": P},
    {"stage": "mail", "action": "disconnect", "probability": P},
    {"stage": "rcpt", "reply": "450 4.2.1 Mailbox busy", "probability": P},
    {"stage": "data", "reply": "451 4.3.0 Try later", "probability": P},
    {"stage": "eod", "reply": "451 4.7.500 Server busy. Please try again later",
     "probability": P},
    {"stage": "eod", "action": "stall", "probability": P / 4},
    {"stage": "eod", "action": "disconnect", "probability": P},
]


def normalized(msg):
    out = re.sub(rb"(?<!\r)\n", b"\r\n", msg)
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transport")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--seed", default="7")
    a = ap.parse_args()
    env = harness.Env("soak")
    failures = []
    try:
        env.set_faults(FAULTS)
        env.start_o365("--seed", a.seed)  # the last --seed wins
        env.start_entra()
        conf = os.path.join(env.dir, "o365relay.conf")
        log = os.path.join(env.dir, "transport.log")
        with open(conf, "w") as f:
            f.write("[relay]\nstate_dir = %s\nlog = file:%s\nlog_level = info\n"
                    % (os.path.join(env.dir, "state"), log))
            f.write("[smtp]\nhost = localhost\nport = %d\nhelo_name = relay.test\nca_file = %s\n"
                    "connect_timeout = 3\ncommand_timeout = 2\ndata_timeout = 2\ndeadline = 30\n"
                    % (env.o365_port, os.path.join(env.certs, "ca.crt")))
            f.write("[entra]\n" + "".join("%s = %s\n" % kv for kv in env.entra_settings().items()))
            f.write("[account noreply]\nmailbox = %s\nsenders = %s\n" % (MAILBOX, MAILBOX))
        msgs = {i: (b"From: noreply@contoso.com\nTo: r%d@example.org\nSubject: soak %d\n"
                    b"X-Soak-Id: %d\n\n.line %d\n" % (i, i, i, i)) + b"x" * (i * 37 % 3000)
                for i in range(a.n)}
        pending = list(range(a.n))
        attempts = {i: 0 for i in msgs}
        outcomes = {"delivered": 0, "deferred": 0, "permanent": 0}
        lock = threading.Lock()
        t0 = time.time()

        def worker():
            while True:
                with lock:
                    if not pending:
                        return
                    i = pending.pop(0)
                    attempts[i] += 1
                    if attempts[i] > 20:
                        failures.append("message %d: still not delivered after 20 tries" % i)
                        continue
                argv = [a.transport, "-c", conf, "-f", MAILBOX, "-q", "SOAK%05d" % i, "-n",
                        "noreply", "--", "r%d@example.org" % i]
                r = subprocess.run(argv, input=msgs[i], capture_output=True, timeout=120)
                line = r.stdout.decode("utf-8", "replace").rstrip("\n")
                with lock:
                    ok_line = bool(re.match(r"^[245]\.\d+\.\d+ ", line)) and "\n" not in line
                    if not ok_line or r.stderr:
                        failures.append("message %d: bad output %r / %r" % (i, r.stdout,
                                                                              r.stderr[-200:]))
                    if r.returncode == 0 and line.startswith("2."):
                        outcomes["delivered"] += 1
                    elif r.returncode == 75 and line.startswith("4."):
                        outcomes["deferred"] += 1
                        pending.append(i)  # Postfix retries later
                    else:
                        outcomes["permanent"] += 1
                        failures.append("message %d: rc=%d %s" % (i, r.returncode, line))
        ts = [threading.Thread(target=worker) for _ in range(a.parallel)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.time() - t0

        got = {}
        for envl, body in env.messages():
            m = re.search(rb"X-Soak-Id: (\d+)", body)
            i = int(m.group(1)) if m else -1
            got.setdefault(i, []).append((envl, body))
        for i, msg in msgs.items():
            copies = got.get(i, [])
            if len(copies) != 1:
                failures.append("message %d received %d times" % (i, len(copies)))
            elif copies[0][1] != normalized(msg):
                failures.append("message %d body differs" % i)
        text = open(log, "rb").read().decode("utf-8", "replace") if os.path.exists(log) else ""
        for tok in env.issued_tokens():
            if tok in text:
                failures.append("an access token is in the transport log")
                break
        st = env.stats()
        print("soak: %d messages, %d deliveries (%d delivered, %d deferred, %d permanent), "
              "%d faults fired, %d connections, %d token requests, %.1f s"
              % (a.n, sum(attempts.values()), outcomes["delivered"], outcomes["deferred"],
                 outcomes["permanent"], st["faults_fired"], st["connections"],
                 env.entra_token_requests(), elapsed))
        if st["faults_fired"] < a.n * 0.05:
            failures.append("too few faults fired (%d): the test did not test much"
                            % st["faults_fired"])
        if st["auth_before_tls"] or st["mail_before_tls"]:
            failures.append("AUTH or MAIL before TLS")
    finally:
        env.close()
    for f in failures[:30]:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
