#!/usr/bin/env python3
"""o365relayctl postfix-config against a real, private Postfix instance.

Checks (issue 10): a fresh instance configured ONLY from the command's output
(main.cf lines with postconf -e, master.cf entries with postconf -M, the map
with postmap) delivers a message through the milter and the transport to the
fake Office 365, and --check then finds no difference (exit 0); a drifted
instance (another maxproc, a sender missing from the map, another milter) is
reported with the right lines and commands (exit 1), and running the printed
postconf commands plus rebuilding the map makes --check pass again; a Postfix
that cannot be asked exits 75, a bad config 78.

usage: test_postfix_config.py BUILD_DIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class Ctl:
    def __init__(self, st):
        self.st = st
        self.conf = st.postfix.conf

    def __call__(self, *args, config=None):
        return run([self.st.ctl_bin, "-T", self.st.transport_bin, "postfix-config",
                    "-c", config or self.st.config, "-C", self.conf] + list(args))

    def section(self, name):
        r = self("--section", name)
        assert r.returncode == 0, r
        return r.stdout


def apply_output(ctl):
    """Configures the instance from the command's output only."""
    conf = ctl.conf
    # 1. main.cf: each line through postconf -e
    for line in ctl.section("main").splitlines():
        run(["postconf", "-c", conf, "-e", line], check=True)
    # 2. master.cf: each entry (unfolded) through postconf -M name/type=entry
    entries, cur = [], []
    for line in ctl.section("master").splitlines():
        if line[:1] in (" ", "\t"):
            cur.extend(line.split())
        else:
            if cur:
                entries.append(cur)
            cur = line.split()
    if cur:
        entries.append(cur)
    for fields in entries:
        run(["postconf", "-c", conf, "-M", "%s/%s=%s" % (fields[0], fields[1], " ".join(fields))],
            check=True)
    # 3. the map: the file, then postmap
    write_map(ctl, ctl.section("map"))
    return entries


def write_map(ctl, text):
    path = os.path.join(ctl.conf, "o365relay_sender_transport")
    with open(path, "w") as f:
        f.write(text)
    run(["postmap", "-c", ctl.conf, "hash:" + path], check=True)


def main():
    build = sys.argv[1]
    st = Stack(build, "pfconf", policy="messages_per_minute = 0\n", bare_postfix=True)
    try:
        ctl = Ctl(st)
        pf = st.postfix

        # 0. a fresh instance: everything is a difference
        r = ctl("--check")
        check(r.returncode == 1, "fresh instance: differences, exit 1 (%d)" % r.returncode)
        check("master.cf: no entry o365-noreply/unix" in r.stdout,
              "fresh instance: the missing master.cf entry is named")

        # 1. configured only from the command's output, it delivers
        entries = apply_output(ctl)
        check(sorted(e[0] for e in entries) == ["o365-alerts", "o365-noreply"],
              "one master.cf entry per account: %s" % [e[0] for e in entries])
        check(all(e[6] == "3" for e in entries), "maxproc 3 per SMTP account")
        pf.start()
        r = ctl("--check")
        check(r.returncode == 0, "--check after applying: no difference (%d)\n%s%s" % (
            r.returncode, r.stdout, r.stderr))
        msg = st.send("app1@apps.contoso.com", ["bob@example.org"], "via postfix-config",
                      from_header="app1@apps.contoso.com")
        check(msg["status"] == "queued", "accepted by smtpd through the milter: %s" % msg)
        msg2 = st.send("alerts@contoso.com", ["carol@example.org"], "alerts account")
        check(msg2["status"] == "queued", "alerts accepted: %s" % msg2)
        pf.wait_for(lambda: st.delivered_ids().get(msg["message_id"]) == 1 and
                    st.delivered_ids().get(msg2["message_id"]) == 1, 60,
                    "delivery of both messages to the fake Office 365")
        by_mid = {}
        for env, data in st.delivered():
            for mid in (msg["message_id"], msg2["message_id"]):
                if mid.encode() in data:
                    by_mid[mid] = (env, data)
        check(by_mid[msg["message_id"]][0]["mailbox"] == "noreply@contoso.com",
              "app1@apps.contoso.com sent by the noreply mailbox")
        check(by_mid[msg2["message_id"]][0]["mailbox"] == "alerts@contoso.com",
              "alerts@contoso.com sent by the alerts mailbox")
        check(b"X-O365Relay-Account: noreply" in by_mid[msg["message_id"]][1],
              "the milter tagged the message")
        log = pf.log_text()
        check("relay=o365-noreply" in log and "relay=o365-alerts" in log,
              "each account through its own transport")

        # 2. drift: another maxproc, a sender missing from the map, another milter
        run(["postconf", "-c", ctl.conf, "-Fe", "o365-alerts/unix/process_limit=5"], check=True)
        kept = [l for l in ctl.section("map").splitlines() if not l.startswith("alerts@")]
        write_map(ctl, "\n".join(kept) + "\n")
        run(["postconf", "-c", ctl.conf, "-e", "smtpd_milters = inet:127.0.0.1:9"], check=True)
        r = ctl("--check")
        out = r.stdout
        check(r.returncode == 1, "drifted: exit 1 (%d)" % r.returncode)
        check("master.cf: o365-alerts/unix: maxproc is 5, want 3" in out, "maxproc drift named")
        check("postconf -c %s -M 'o365-alerts/unix=o365-alerts unix - n n - 3 pipe" % ctl.conf
              in out, "maxproc fix command")
        check("map: alerts@contoso.com is not in the map" in out, "missing sender named")
        check("alerts@contoso.com o365-alerts:alerts" in out, "the map line to add")
        check("postmap -c %s hash:" % ctl.conf in out, "the postmap command")
        milter = "inet:127.0.0.1:%d" % st.milter_port
        check("smtpd_milters is 'inet:127.0.0.1:9', without %s" % milter in out,
              "other milter named")
        check("-e 'smtpd_milters = inet:127.0.0.1:9, %s'" % milter in out, "milter fix command")
        check("3 differences" in out, "exactly the three differences:\n" + out)

        # 3. the printed commands (and the map) repair it
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("fix:  postconf "):
                run(["sh", "-c", line[len("fix:  "):]], check=True)
        write_map(ctl, ctl.section("map"))
        r = ctl("--check")
        check(r.returncode == 0, "after the fixes: no difference (%d)\n%s" % (r.returncode,
                                                                           r.stdout))

        # 4. exit statuses: Postfix not askable 75, bad config 78
        r = run([st.ctl_bin, "postfix-config", "--check", "-c", st.config,
                 "-C", os.path.join(st.dir, "no-such-dir")])
        check(r.returncode == 75, "postconf cannot run: exit 75 (%d) %s" % (r.returncode,
                                                                           r.stderr.strip()))
        bad = os.path.join(st.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("[nonsense]\n")
        r = ctl("--check", config=bad)
        check(r.returncode == 78, "bad config: exit 78 (%d)" % r.returncode)
    finally:
        st.close()
    if FAILURES:
        print("%d FAILED" % len(FAILURES))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
