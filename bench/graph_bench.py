#!/usr/bin/env python3
"""graph_bench.py: o365relay-transport delivering by Microsoft Graph vs by SMTP, same run.

Usage: graph_bench.py TRANSPORT_BINARY [-n 100] [--size 20480]

Starts fake_o365.py, fake_graph.py and fake_entra.py (issuing both audiences' tokens)
on loopback (tests/fakes) and one config with two accounts: `noreply` (method = smtp,
fake Office 365) and `graphy` (method = graph, fake Graph). Delivers the same
SIZE-byte message N times through each, interleaved (smtp, graph, smtp, ...) so that
drift hits both alike, one delivery at a time, tokens cached (one warm-up delivery
each). Per delivery: wall time (fork to exit) and CPU time user+sys of the transport
(os.wait4() rusage). Peak RSS by /usr/bin/time -f %M for one delivery of the SIZE
message by each method, and for the largest message Graph takes (just under
3,145,728 bytes with CRLF line ends), by each method; checks the fakes received
every message (the Graph copies byte-exact). Prints a Markdown report on stdout.
"""
import argparse
import base64
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "transport"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fakes"))
sys.path.insert(0, HERE)
from test_fake_graph import GraphEnv  # noqa: E402
from transport_bench import harness_normalized, message, run_measured, summary  # noqa: E402

SMTP_MAILBOX = "noreply@contoso.com"
GRAPH_MAILBOX = "graph@contoso.com"
GRAPH_LIMIT = 3 * 1024 * 1024


def graph_message(size):
    """A message of `size` bytes once its LF line ends are CRLF."""
    m = message(size)
    m = m.replace(b"noreply@contoso.com", GRAPH_MAILBOX.encode())
    while len(harness_normalized(m)) > size:
        m = m[:-(len(harness_normalized(m)) - size) - 1] + b"\n"
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transport")
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--size", type=int, default=20480)
    a = ap.parse_args()
    binary = os.path.abspath(a.transport)

    env = GraphEnv("graphbench")
    try:
        env.set_o365_config({"max_connections_per_mailbox": 1000})
        o365_port = env.start_o365()
        env.start_entra_for_graph()
        graph_port = env.start_graph()
        env.set_graph_config({"max_concurrency": 1000, "rate_limit": [1000000, 600]},
                             mailboxes={GRAPH_MAILBOX: {}})
        state = os.path.join(env.dir, "state")
        log = os.path.join(env.dir, "transport.log")
        conf = os.path.join(env.dir, "o365relay.conf")
        ca = os.path.join(env.certs, "ca.crt")
        e = env.entra_settings()
        with open(conf, "w") as f:
            f.write("[relay]\nstate_dir = %s\nlog = file:%s\nlog_level = info\n" % (state, log))
            f.write("[smtp]\nhost = localhost\nport = %d\nhelo_name = relay.test\nca_file = %s\n"
                    % (o365_port, ca))
            f.write("[entra]\n" + "".join("%s = %s\n" % kv for kv in e.items()))
            f.write("[graph]\nendpoint = https://localhost:%d\nca_file = %s\n" % (graph_port, ca))
            f.write("[account noreply]\nmailbox = %s\n" % SMTP_MAILBOX)
            f.write("[account graphy]\nmailbox = %s\nmethod = graph\n" % GRAPH_MAILBOX)

        def argv(account, sender):
            return [binary, "-c", conf, "-f", sender, "-q", "BENCH", "-n", account, "--",
                    "bob@example.org"]
        clients = {"smtp": (argv("noreply", SMTP_MAILBOX), os.path.join(env.dir, "smtp.eml")),
                   "graph": (argv("graphy", GRAPH_MAILBOX), os.path.join(env.dir, "graph.eml"))}
        with open(clients["smtp"][1], "wb") as f:
            f.write(message(a.size))
        with open(clients["graph"][1], "wb") as f:
            f.write(graph_message(a.size))

        for name, (av, path) in clients.items():  # warm-up: token caches, both paths work
            rc, _, _, _, out = run_measured(av, path)
            if rc != 0:
                raise SystemExit("%s failed in warm-up: rc=%d %r" % (name, rc, out))
        n_smtp, n_graph = len(env.messages()), len(env.deliveries())
        wall = {k: [] for k in clients}
        cpu = {k: [] for k in clients}
        for i in range(a.n):
            for name, (av, path) in clients.items():
                rc, w, c, _, out = run_measured(av, path)
                if rc != 0:
                    raise SystemExit("%s failed at %d: rc=%d %r" % (name, i, rc, out))
                wall[name].append(w)
                cpu[name].append(c)
        got_smtp = len(env.messages()) - n_smtp
        got_graph = len(env.deliveries()) - n_graph
        with open(clients["graph"][1], "rb") as f:
            want = harness_normalized(f.read())
        graph_exact = sum(1 for d in env.deliveries()[n_graph:]
                          if base64.b64decode(d["mime_b64"]) == want)

        time_out = os.path.join(env.dir, "time.out")

        def rss(av, path):
            with open(path, "rb") as f:
                t0 = time.perf_counter()
                p = subprocess.run(["/usr/bin/time", "-o", time_out, "-f", "%M %U %S", *av],
                                   stdin=f, capture_output=True)
                w = time.perf_counter() - t0
            with open(time_out) as f:
                m, u, s = f.read().split()[-3:]
            return p.returncode, int(m), w, float(u) + float(s)
        small_rss = {name: rss(av, path)[1] for name, (av, path) in clients.items()}

        big = {}
        big_paths = {name: os.path.join(env.dir, "big-%s.eml" % name) for name in clients}
        with open(big_paths["graph"], "wb") as f:
            f.write(graph_message(GRAPH_LIMIT - 64))
        with open(big_paths["graph"], "rb") as f:
            big_graph = f.read()
        with open(big_paths["smtp"], "wb") as f:  # the same message, From the SMTP mailbox
            f.write(big_graph.replace(GRAPH_MAILBOX.encode(), SMTP_MAILBOX.encode()))
        big_size = len(harness_normalized(big_graph))
        n_graph = len(env.deliveries())
        for name, (av, _) in clients.items():
            big[name] = rss(av, big_paths[name])
        big_exact = any(base64.b64decode(d["mime_b64"]) == harness_normalized(big_graph)
                        for d in env.deliveries()[n_graph:])

        print("## Run of %s\n" % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        print("Machine: %s, %s, %d CPUs; python %s\n" % (
            platform.node(), platform.machine(), os.cpu_count(), platform.python_version()))
        print("%d messages of %d bytes per method, interleaved, one at a time, loopback, "
              "tokens cached. Times in milliseconds per message.\n" % (a.n, a.size))
        print("| method | wall mean | wall median | wall p90 | CPU mean (user+sys) | CPU median "
              "| CPU p90 | peak RSS KiB |")
        print("|---|---|---|---|---|---|---|---|")
        for name in clients:
            w, c = summary(wall[name]), summary(cpu[name])
            print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d |" % (
                name, 1000 * w["mean"], 1000 * w["median"], 1000 * w["p90"], 1000 * c["mean"],
                1000 * c["median"], 1000 * c["p90"], small_rss[name]))
        print("\nGraph / SMTP ratio: wall %.2f, CPU %.2f (median-based: wall %.2f, CPU %.2f)." % (
            statistics.fmean(wall["graph"]) / statistics.fmean(wall["smtp"]),
            statistics.fmean(cpu["graph"]) / statistics.fmean(cpu["smtp"]),
            statistics.median(wall["graph"]) / statistics.median(wall["smtp"]),
            statistics.median(cpu["graph"]) / statistics.median(cpu["smtp"])))
        print("Received in the timed loop: SMTP %d, Graph %d (expected %d each); Graph copies "
              "byte-exact: %d.\n" % (got_smtp, got_graph, a.n, graph_exact))
        print("Largest Graph message: %d bytes (with CRLF; Graph's limit %d), through each "
              "method:" % (big_size, GRAPH_LIMIT))
        for name, (rc, m, w, c) in big.items():
            print("- %s: exit %d, peak RSS %d KiB (%.1f MiB), wall %.2f s, CPU %.2f s" % (
                name, rc, m, m / 1024, w, c))
        print("- Graph copy received byte-exact: %s\n" % ("yes" if big_exact else "NO"))
    finally:
        env.close()


if __name__ == "__main__":
    main()
