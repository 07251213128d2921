#!/usr/bin/env python3
"""Trust through a real Postfix (issue 8): our own mistakes defer, never bounce;
a From the account may not send as is refused in the session.

Checks:
1. A From with two addresses, one of them foreign, is refused in the SMTP
   session (550 5.7.1 naming the foreign address), never queued.
2. `o365relay-milter --check-config` and `o365relayctl check` exit 78 for a
   file without an account. An empty configuration file during a reload (an operator's mistake): the
   queued message is deferred with 4.3.5 (never bounced); once the file is
   restored, a queue flush delivers it exactly once.
3. The same with the configuration path replaced by a directory.
4. The message's account renamed in the configuration while mail for it is
   queued (`-n alerts` no longer names an account): deferred with 4.3.5; once
   the account is back, delivered exactly once.
No check may see `status=bounced` in the mail log.

usage: test_trust.py BUILD_DIR
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def deferrals_435(pf, rcpt):
    """pipe(8)'s log lines that deferred `rcpt` with 4.3.5."""
    return [l for l in pf.log_text().splitlines()
            if "postfix/pipe" in l and "to=<%s>" % rcpt in l and "dsn=4.3.5, status=deferred" in l]


def deferred_then_delivered(st, name, break_config, restore_config, sender, rcpt):
    """Breaks the configuration, queues one message, checks it is deferred with
    4.3.5, restores, flushes, checks it is delivered exactly once."""
    pf = st.postfix
    break_config()
    try:
        r = st.send(sender, [rcpt], name, from_header=sender)
        check(r["status"] == "queued", "%s: message accepted by smtpd (milter keeps its config): %s"
              % (name, r))
        pf.wait_for(lambda: deferrals_435(pf, rcpt) or "status=bounced" in pf.log_text(), 60,
                    name + ": a deferral")
        lines = deferrals_435(pf, rcpt)
        check(len(lines) >= 1, "%s: deferred with 4.3.5: %s" % (name, lines[-1:]))
        pf.wait_for(lambda: [m["queue_name"] for m in pf.queue()] == ["deferred"], 30,
                    name + ": the message in the deferred queue")
        check(True, "%s: the message stays queued (deferred)" % name)
        check("status=bounced" not in pf.log_text(), "%s: not bounced" % name)
        check(r["message_id"] not in st.delivered_ids(), "%s: not delivered while broken" % name)
    finally:
        restore_config()
    pf.flush()
    pf.wait_for(lambda: st.delivered_ids().get(r["message_id"]) == 1, 60,
                name + ": delivery after the configuration is restored")
    pf.wait_for(lambda: pf.queue() == [], 30, name + ": empty queue")
    check(st.delivered_ids().get(r["message_id"]) == 1 and pf.queue() == [],
          "%s: delivered exactly once after the fix, queue empty" % name)
    check("status=bounced" not in pf.log_text(), "%s: still nothing bounced" % name)


def main():
    build = sys.argv[1]
    st = Stack(build, "trust", policy="messages_per_minute = 0\n")
    try:
        with open(st.config) as f:
            good = f.read()

        def restore():
            if os.path.isdir(st.config):
                shutil.rmtree(st.config)
            with open(st.config, "w") as f:
                f.write(good)
            os.chmod(st.config, 0o644)

        # 1. two addresses in From, one foreign: refused in the session
        r = st.send("app1@apps.contoso.com", ["bob@example.org"], "two froms",
                    from_header="noreply@contoso.com, ceo@victim.example")
        check(r["status"] == "refused" and r["code"] == 550 and
              "ceo@victim.example" in r["text"],
              "two-address From refused in session: %s %s" % (r["code"], r["text"]))
        check(r["message_id"] not in st.delivered_ids(), "two-address From: nothing delivered")

        # 2. an empty configuration file (a reload gone wrong)
        noacc = os.path.join(st.dir, "no-account.conf")
        with open(noacc, "w") as f:
            f.write(good.split("[account ")[0].replace("null_sender_account = noreply", ""))
        for binary, argv in ((st.milter_bin, ["--check-config", "-c", noacc]),
                             (st.ctl_bin, ["-c", noacc, "check"])):
            p = subprocess.run([binary] + argv, capture_output=True, text=True, timeout=30)
            check(p.returncode == 78 and "no [account NAME] section" in p.stdout + p.stderr,
                  "%s %s on a file without an account: exit %d (78 expected): %s" %
                  (os.path.basename(binary), " ".join(argv[:1] if argv[0] != "-c" else argv[2:]), p.returncode,
                   (p.stdout + p.stderr).strip()[-200:]))

        def empty():
            open(st.config, "w").close()
        deferred_then_delivered(st, "empty config", empty, restore, "alerts@contoso.com",
                                "dave@example.org")

        # 3. the configuration path is a directory
        def directory():
            os.remove(st.config)
            os.mkdir(st.config)
        deferred_then_delivered(st, "config is a directory", directory, restore,
                                "alerts@contoso.com", "erin@example.org")

        # 4. the account of queued mail renamed (`-n alerts` names no account)
        def renamed():
            with open(st.config, "w") as f:
                f.write(good.replace("[account alerts]", "[account alerts-renamed]"))
        deferred_then_delivered(st, "account renamed", renamed, restore, "alerts@contoso.com",
                                "frank@example.org")
    finally:
        if FAILURES:
            print("--- maillog tail ---\n" + st.postfix.log_tail(40) if st.postfix else "")
            print("--- o365relay.log tail ---\n" +
                  "".join(st.transport_log().splitlines(True)[-20:]))
        st.close()
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
