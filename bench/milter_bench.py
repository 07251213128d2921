#!/usr/bin/env python3
"""Postfix smtpd throughput with and without o365relay-milter.

A private Postfix instance (tests/milter/postfix_instance.py: postfix -c DIR,
loopback only, discard transport) receives MESSAGES messages from smtp-source
(SESSIONS parallel sessions, one message per session, SIZE bytes each) and the
wall time until smtp-source has all replies is measured: messages per second.
Rounds alternate without/with the milter; the medians are compared.

Usage: milter_bench.py MILTER_BINARY [MESSAGES] [SESSIONS] [SIZE] [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "milter"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Milter, TempDir  # noqa: E402
from postfix_instance import Postfix  # noqa: E402

BIN = sys.argv[1]
SOCKET = os.environ.get("MILTER_SOCKET", "unix")  # unix | inet
MESSAGES = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
SESSIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
SIZE = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 3

POLICY = "messages_per_minute = 0\nrecipients_per_day = 0\n"


def one_round(with_milter):
    t = TempDir("o365bench-")
    os.chmod(t.path, 0o755)
    m = pf = None
    try:
        sock = None
        if with_milter:
            mdir = os.path.join(t.path, "milter")
            os.makedirs(mdir)
            path = os.path.join(mdir, "milter.sock")
            m = Milter(BIN, mdir, policy=POLICY, milter="socket_mode = 0666\n",
                       socket_spec=("unix:" + path) if SOCKET == "unix" else None)
            # info level: one line per message, as in production
            m.write_config(policy=POLICY, milter="socket_mode = 0666\n")
            with open(m.conf) as f:
                text = f.read().replace("log_level = debug", "log_level = info")
            with open(m.conf, "w") as f:
                f.write(text)
            m.start()
            sock = ("unix:" + path) if SOCKET == "unix" else "inet:127.0.0.1:%d" % m.port
        pf = Postfix(os.path.join(t.path, "postfix"), milter_sock=sock, transport="discard")
        pf.start()
        cmd = ["smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", str(SIZE),
               "-f", "noreply@contoso.com", "-t", "bob@example.org", "-M", "relay.test",
               "127.0.0.1:%d" % pf.port]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        if p.returncode != 0:
            raise RuntimeError("smtp-source failed: %s %s" % (p.stdout, p.stderr))
        time.sleep(1)
        log = pf.log()
        queued = log.count("(queue active)")
        rejected = log.count("milter-reject")
        accepted = m.log().count("verdict=accept") if m else None
        return elapsed, queued, rejected, accepted
    finally:
        if pf:
            pf.stop()
        if m:
            m.stop()
        t.close()


def main():
    res = {False: [], True: []}
    for r in range(ROUNDS):
        for with_milter in (False, True):
            elapsed, queued, rejected, accepted = one_round(with_milter)
            rate = MESSAGES / elapsed
            res[with_milter].append(rate)
            print("round %d %-14s %6.2f s  %7.1f msg/s  queued=%d milter-rejects=%d%s" % (
                r + 1, "with milter" if with_milter else "without milter", elapsed, rate,
                queued, rejected, "" if accepted is None else " milter-accepts=%d" % accepted),
                flush=True)
            if rejected or (accepted is not None and accepted != MESSAGES):
                raise SystemExit("the milter did not accept every message: the run is invalid")
    without = statistics.median(res[False])
    with_m = statistics.median(res[True])
    print("median without milter: %.1f msg/s" % without)
    print("median with milter:    %.1f msg/s" % with_m)
    print("ratio with/without:    %.3f (milter cost %.1f%%)" % (
        with_m / without, 100 * (1 - with_m / without)))


if __name__ == "__main__":
    main()
