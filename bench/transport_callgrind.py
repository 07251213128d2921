#!/usr/bin/env python3
"""transport_callgrind.py: instruction counts of one warm-cache delivery.

Usage: transport_callgrind.py [--runs 3] [--cpu N] [--size 20480] [--keep DIR]
                              [--system-store] BINARY...

Starts the fakes (tests/transport/harness.py) like bench/transport_bench.py,
warms the token cache with one delivery, then for each o365relay-transport
BINARY runs RUNS deliveries of the same 20 KB message under
`valgrind --tool=callgrind` and reports the total instruction count (Ir,
"Collected" of callgrind; repeatable on a busy machine, unlike times).
--cpu N: also N interleaved plain deliveries per binary, CPU user+sys from
wait4() (noisy on a shared machine; the instruction count is the reference).
--keep DIR: keeps the callgrind.out files there (callgrind_annotate --inclusive=yes).
--system-store: [smtp] ca_file empty (the production default: the system trust
store); the test CA is offered as a hashed directory in SSL_CERT_DIR, so the
cost of reading the system's store is in the count.
Several binaries (e.g. before/after builds) are measured against the same fakes.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "transport"))
import harness  # noqa: E402
from harness import MAILBOX  # noqa: E402
from transport_bench import message, run_measured  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--size", type=int, default=20480)
    ap.add_argument("--keep")
    ap.add_argument("--system-store", action="store_true")
    a = ap.parse_args()
    bins = [os.path.abspath(b) for b in a.binaries]

    env = harness.Env("callgrind")
    try:
        env.set_o365_config({"max_connections_per_mailbox": 1000})
        port = env.start_o365()
        env.start_entra()
        conf = os.path.join(env.dir, "o365relay.conf")
        with open(conf, "w") as f:
            f.write("[relay]\nstate_dir = %s\nlog = file:%s\nlog_level = info\n"
                    % (os.path.join(env.dir, "state"), os.path.join(env.dir, "transport.log")))
            f.write("[smtp]\nhost = localhost\nport = %d\nhelo_name = relay.test\n" % port)
            if not a.system_store:
                f.write("ca_file = %s\n" % os.path.join(env.certs, "ca.crt"))
            f.write("[entra]\n" + "".join("%s = %s\n" % kv for kv in env.entra_settings().items()))
            f.write("[account noreply]\nmailbox = %s\nsenders = %s\n" % (MAILBOX, MAILBOX))
        msg = os.path.join(env.dir, "msg.eml")
        with open(msg, "wb") as f:
            f.write(message(a.size))
        if a.system_store:
            ca = os.path.join(env.certs, "ca.crt")
            hashed = os.path.join(env.dir, "certs-hashed")
            os.makedirs(hashed)
            h = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", ca],
                               capture_output=True, text=True, check=True).stdout.strip()
            os.symlink(ca, os.path.join(hashed, h + ".0"))
            os.environ["SSL_CERT_DIR"] = hashed
            os.environ.pop("SSL_CERT_FILE", None)
        args = ["-c", conf, "-f", MAILBOX, "-q", "CG", "-n", "noreply", "--", "bob@example.org"]
        for b in bins:  # warm-up: fills the token cache, checks each binary works
            rc, _, _, _, out = run_measured([b, *args], msg)
            if rc != 0:
                raise SystemExit("%s failed in warm-up: rc=%d %r" % (b, rc, out))
        entra_before = env.entra_token_requests()

        print("| binary | Ir per delivery (callgrind, %d runs: min / median / max) |" % a.runs)
        print("|---|---|")
        for i, b in enumerate(bins):
            irs = []
            for r in range(a.runs):
                out_file = os.path.join(env.dir, "callgrind.%d.%d.out" % (i, r))
                with open(msg, "rb") as f:
                    p = subprocess.run(["valgrind", "--tool=callgrind",
                                        "--callgrind-out-file=" + out_file, b, *args],
                                       stdin=f, capture_output=True, text=True)
                if p.returncode != 0:
                    raise SystemExit("%s under callgrind: rc=%d %s %s"
                                     % (b, p.returncode, p.stdout, p.stderr[-2000:]))
                m = re.search(r"Collected : (\d+)", p.stderr)
                irs.append(int(m.group(1)))
                if a.keep:
                    os.makedirs(a.keep, exist_ok=True)
                    shutil.copy(out_file, os.path.join(a.keep, "callgrind.%d.%d.out" % (i, r)))
            irs.sort()
            print("| %s | %.2f M / %.2f M / %.2f M |" % (b, irs[0] / 1e6,
                                                        statistics.median(irs) / 1e6,
                                                        irs[-1] / 1e6))
        if env.entra_token_requests() != entra_before:
            print("\nWARNING: a token request was made during the measured runs")
        if a.cpu:
            cpu = {b: [] for b in bins}
            for _ in range(a.cpu):
                for b in bins:
                    rc, _, c, _, out = run_measured([b, *args], msg)
                    if rc != 0:
                        raise SystemExit("%s failed: rc=%d %r" % (b, rc, out))
                    cpu[b].append(c)
            print("\n| binary | CPU user+sys ms, %d runs interleaved: mean / median / min |" % a.cpu)
            print("|---|---|")
            for b in bins:
                v = cpu[b]
                print("| %s | %.2f / %.2f / %.2f |" % (b, 1000 * statistics.fmean(v),
                                                      1000 * statistics.median(v), 1000 * min(v)))
        print("\nload average at the end: %s (%s)" % (
            " ".join("%.2f" % x for x in os.getloadavg()), time.strftime("%Y-%m-%d %H:%M:%S %Z")))
    finally:
        env.close()


if __name__ == "__main__":
    main()
