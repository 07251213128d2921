#!/usr/bin/env python3
"""Concurrency test of the REAL o365relay-milter: 50 miltertest processes at
once, each one message with one recipient for the same account. The rate
counters must be exact afterwards: with recipients_per_day = 20 exactly 20
messages are accepted and 30 tempfailed (451 4.7.1), and the same with
messages_per_minute = 25 (25 / 25).

Usage: test_concurrency.py /path/to/o365relay-milter
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LUA_PRELUDE, Failures, Milter, TempDir, write  # noqa: E402

BIN = sys.argv[1]
F = Failures()
SESSIONS = 50

SCRIPT = LUA_PRELUDE + r"""
conn = open_conn(true)
mail(conn, "<noreply@contoso.com>")
local r = mt.getreply(conn)
if r ~= SMFIR_CONTINUE then
  mt.echo("RESULT tempfail-mail")
else
  rcpt(conn, "<bob@example.org>")
  r = mt.getreply(conn)
  if r ~= SMFIR_CONTINUE then
    mt.echo("RESULT tempfail-rcpt")
  else
    header(conn, "From", "noreply@contoso.com")
    -- let the sessions pile up before their end of message
    mt.sleep(0.5)
    eom(conn)
    r = mt.getreply(conn)
    if r == SMFIR_CONTINUE then
      if not mt.eom_check(conn, MT_HDRADD, "X-O365Relay-Account", "noreply") then
        error("accepted without the tag header") end
      mt.echo("RESULT accept")
    elseif r == SMFIR_REPLYCODE then
      mt.echo("RESULT tempfail-eom")
    else
      error("unexpected eom reply " .. tostring(r))
    end
  end
end
mt.disconnect(conn)
"""


def run_round(tmp, policy, limit, rule):
    m = Milter(BIN, tmp, policy=policy)
    m.start()
    script = os.path.join(tmp, "session.lua")
    write(script, SCRIPT)
    try:
        t0 = time.time()
        procs = [subprocess.Popen(["miltertest", "-D", "sock=" + m.sock, "-D",
                                   "qid=C%03d" % i, "-s", script],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for i in range(SESSIONS)]
        outs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
        elapsed = time.time() - t0
        rcs = [p.returncode for p in procs]
        F.check(all(rc == 0 for rc in rcs),
                "%s: all %d miltertest sessions ran (rcs %s)\n%s" % (
                    rule, SESSIONS, sorted(set(rcs)), "\n".join(o for o in outs if "RESULT" not in o)[:2000]))
        results = [next((l.split()[1] for l in o.splitlines() if l.startswith("RESULT")), "none")
                   for o in outs]
        accepted = results.count("accept")
        tempfailed = sum(1 for r in results if r.startswith("tempfail"))
        print("%s: %d sessions in %.2fs: %d accepted, %d tempfailed (%s)" % (
            rule, SESSIONS, elapsed, accepted, tempfailed,
            {r: results.count(r) for r in set(results)}), flush=True)
        F.check(accepted == limit, "%s: exactly %d accepted (got %d)" % (rule, limit, accepted))
        F.check(tempfailed == SESSIONS - limit,
                "%s: exactly %d tempfailed (got %d)" % (rule, SESSIONS - limit, tempfailed))
        log = m.log()
        F.check(log.count("verdict=accept") == limit,
                "%s: %d accept log lines (got %d)" % (rule, limit, log.count("verdict=accept")))
        F.check(log.count("rule=" + rule) == SESSIONS - limit,
                "%s: %d tempfail log lines naming the rule (got %d)" % (
                    rule, SESSIONS - limit, log.count("rule=" + rule)))
        F.check("451 4.7.1 account noreply reached %d" % limit in log,
                "%s: reply text names account and limit" % rule)
    finally:
        F.check(m.stop() == 0, "%s: clean stop" % rule)


def main():
    for policy, limit, rule in (
            ("recipients_per_day = 20\n", 20, "recipients_per_day"),
            ("messages_per_minute = 25\nrecipients_per_day = 0\n", 25, "messages_per_minute")):
        t = TempDir()
        try:
            run_round(t.path, policy, limit, rule)
        except Exception as e:
            F.check(False, "%s: %s" % (rule, e))
        finally:
            t.close()
    F.exit()


if __name__ == "__main__":
    main()
