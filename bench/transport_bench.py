#!/usr/bin/env python3
"""transport_bench.py: o365relay-transport vs msmtp against the fake Office 365.

Usage: transport_bench.py TRANSPORT_BINARY [-n 200] [--size 20480] [--big-mb 50]

Starts fake_o365.py and fake_entra.py on loopback (tests/fakes), then delivers
the same SIZE-byte message N times with each client, interleaved (transport,
msmtp, msmtp-pw, transport, ...) so that drift hits all alike, one delivery at
a time. Per delivery it records wall time and the CPU time (user+sys) of the
client process and everything it ran (wait4() rusage, which includes reaped
grandchildren such as msmtp's passwordeval shell). Both clients use a cached
token: the transport its token cache (warmed by one delivery first), msmtp a
token fetched once from the fake Entra, read per message by `passwordeval cat
FILE` (as the brief asks) and, as a stricter baseline, given inline with
`password` (no extra process). Then it runs the transport once on a BIG-MB
message under /usr/bin/time -f %M (peak RSS) and checks the fake received it
byte-exact. Prints a Markdown report on stdout.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "transport"))
import harness  # noqa: E402
from harness import MAILBOX  # noqa: E402


def message(size):
    head = (b"From: Noreply <noreply@contoso.com>\nTo: bob@example.org\nSubject: bench\n"
            b"Message-ID: <bench@relay.test>\nMIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=utf-8\n\n")
    line = b"The quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet.\n"
    body = bytearray()
    i = 0
    while len(head) + len(body) < size:
        body += (b"." if i % 40 == 0 else b"") + line
        i += 1
    return (head + bytes(body))[:size - 1] + b"\n"


def run_measured(argv, stdin_path):
    """Runs argv with stdin from a file; returns (rc, wall s, cpu s, maxrss KiB, out)."""
    with open(stdin_path, "rb") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, out


def summary(vals):
    vals = sorted(vals)
    return {"mean": statistics.fmean(vals), "median": statistics.median(vals),
            "p90": vals[int(0.9 * (len(vals) - 1))], "min": vals[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transport")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--size", type=int, default=20480)
    ap.add_argument("--big-mb", type=int, default=50)
    a = ap.parse_args()
    binary = os.path.abspath(a.transport)

    env = harness.Env("bench")
    try:
        env.set_o365_config({"max_connections_per_mailbox": 1000})
        o365_port = env.start_o365()
        env.start_entra()
        state = os.path.join(env.dir, "state")
        log = os.path.join(env.dir, "transport.log")
        conf = os.path.join(env.dir, "o365relay.conf")
        e = env.entra_settings()
        with open(conf, "w") as f:
            f.write("[relay]\nstate_dir = %s\nlog = file:%s\nlog_level = info\n" % (state, log))
            f.write("[smtp]\nhost = localhost\nport = %d\nhelo_name = relay.test\nca_file = %s\n"
                    % (o365_port, os.path.join(env.certs, "ca.crt")))
            f.write("[entra]\n" + "".join("%s = %s\n" % kv for kv in e.items()))
            f.write("[account noreply]\nmailbox = %s\nsenders = %s\n" % (MAILBOX, MAILBOX))
        msg_path = os.path.join(env.dir, "msg.eml")
        msg = message(a.size)
        with open(msg_path, "wb") as f:
            f.write(msg)

        token_file = os.path.join(env.dir, "token")
        with open(token_file, "w") as f:
            f.write(env.fetch_token() + "\n")
        rcs = {}
        for name, auth in (("msmtp", "passwordeval cat %s\n" % token_file),
                           ("msmtp-pw", "password %s\n" % open(token_file).read().strip())):
            rc = os.path.join(env.dir, name + ".rc")
            with open(rc, "w") as f:
                f.write("account default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls on\n"
                        "tls_trust_file %s\ntls_host_override localhost\nauth xoauth2\n"
                        "user %s\nfrom %s\ndomain relay.test\n%s"
                        % (o365_port, os.path.join(env.certs, "ca.crt"), MAILBOX, MAILBOX, auth))
            os.chmod(rc, 0o600)
            rcs[name] = rc

        argvs = {
            "o365relay-transport": [binary, "-c", conf, "-f", MAILBOX, "-q", "BENCH", "-n",
                                    "noreply", "--", "bob@example.org"],
            "msmtp (passwordeval)": ["msmtp", "-C", rcs["msmtp"], "-f", MAILBOX,
                                     "bob@example.org"],
            "msmtp (password)": ["msmtp", "-C", rcs["msmtp-pw"], "-f", MAILBOX,
                                 "bob@example.org"],
        }
        # warm-up: fills the transport's token cache, checks every client works
        for name, argv in argvs.items():
            rc, _, _, _, out = run_measured(argv, msg_path)
            if rc != 0:
                raise SystemExit("%s failed in warm-up: rc=%d %r" % (name, rc, out))
        n0 = len(env.messages())
        wall = {k: [] for k in argvs}
        cpu = {k: [] for k in argvs}
        for i in range(a.n):
            for name, argv in argvs.items():
                rc, w, c, m, out = run_measured(argv, msg_path)
                if rc != 0:
                    raise SystemExit("%s failed at %d: rc=%d %r" % (name, i, rc, out))
                wall[name].append(w)
                cpu[name].append(c)
        received = env.messages()[n0:n0 + a.n * len(argvs)]
        # peak RSS of one delivery of the same message: /usr/bin/time forks a small
        # process, so %M is the client's own (wait4 after a fork from python is not)
        small_rss = {}
        time_out = os.path.join(env.dir, "time.out")
        for name, argv in argvs.items():
            with open(msg_path, "rb") as f:
                subprocess.run(["/usr/bin/time", "-o", time_out, "-f", "%M", *argv], stdin=f,
                               capture_output=True, check=True)
            with open(time_out) as f:
                small_rss[name] = f.read().split()[-1]
        want = harness_normalized(msg)
        exact = sum(1 for _, body in received
                    if body == want or body.endswith(want.split(b"\r\n\r\n", 1)[1]))

        # one big message, peak RSS by /usr/bin/time -f %M
        big_path = os.path.join(env.dir, "big.eml")
        with open(big_path, "wb") as f:
            f.write(b"From: noreply@contoso.com\nTo: bob@example.org\nSubject: big\n\n")
            chunk = message(1 << 20).split(b"\n\n", 1)[1]
            for _ in range(a.big_mb):
                f.write(chunk)
        big_size = os.path.getsize(big_path)
        n1 = len(env.messages())
        with open(big_path, "rb") as f:
            t0 = time.perf_counter()
            p = subprocess.run(["/usr/bin/time", "-o", time_out, "-f", "%M %e %U %S",
                                *argvs["o365relay-transport"]], stdin=f, capture_output=True)
            big_wall = time.perf_counter() - t0
        with open(time_out) as f:
            maxrss_kib, e_s, u_s, s_s = f.read().split()[-4:]
        big_ok = p.returncode == 0 and len(env.messages()) == n1 + 1
        with open(big_path, "rb") as f:
            big_exact = big_ok and env.messages()[-1][1] == harness_normalized(f.read())
        with open(big_path, "rb") as f:
            mp = subprocess.run(["/usr/bin/time", "-o", time_out, "-f", "%M",
                                 *argvs["msmtp (password)"]], stdin=f, capture_output=True)
        with open(time_out) as f:
            msmtp_big_rss = f.read().split()[-1]

        # report
        print("## Run of %s\n" % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        print("Machine: %s, %s, %d CPUs; python %s; %s\n" % (
            platform.node(), platform.machine(), os.cpu_count(), platform.python_version(),
            subprocess.run(["msmtp", "--version"], capture_output=True, text=True)
            .stdout.splitlines()[0]))
        print("%d messages of %d bytes per client, interleaved, one at a time, loopback, "
              "token cached. Times in milliseconds per message.\n" % (a.n, len(msg)))
        print("| client | wall mean | wall median | wall p90 | CPU mean (user+sys) | CPU median "
              "| CPU p90 | peak RSS KiB (/usr/bin/time) |")
        print("|---|---|---|---|---|---|---|---|")
        for name in argvs:
            w, c = summary(wall[name]), summary(cpu[name])
            print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |" % (
                name, 1000 * w["mean"], 1000 * w["median"], 1000 * w["p90"], 1000 * c["mean"],
                1000 * c["median"], 1000 * c["p90"], small_rss[name]))
        t, m = "o365relay-transport", "msmtp (password)"
        print("\nTransport / msmtp (password) ratio: wall %.2f, CPU %.2f (median-based: wall %.2f,"
              " CPU %.2f)." % (statistics.fmean(wall[t]) / statistics.fmean(wall[m]),
                               statistics.fmean(cpu[t]) / statistics.fmean(cpu[m]),
                               statistics.median(wall[t]) / statistics.median(wall[m]),
                               statistics.median(cpu[t]) / statistics.median(cpu[m])))
        print("Messages received by the fake in the timed loop: %d (expected %d); body intact "
              "for %d.\n" % (len(received), a.n * len(argvs), exact))
        print("Big message: %d bytes (%.1f MiB) through o365relay-transport: exit %d, "
              "peak RSS %s KiB (%.1f MiB), wall %.2f s (time: %s s elapsed, %s user, %s sys), "
              "received byte-exact: %s. msmtp (password) on the same file: peak RSS %s KiB.\n"
              % (big_size, big_size / 1048576, p.returncode, maxrss_kib, int(maxrss_kib) / 1024,
                 big_wall, e_s, u_s, s_s, "yes" if big_exact else "NO", msmtp_big_rss))
    finally:
        env.close()


def harness_normalized(msg):
    import re
    out = re.sub(rb"(?<!\r)\n", b"\r\n", msg)
    return out if out.endswith(b"\r\n") else out + b"\r\n"


if __name__ == "__main__":
    main()
