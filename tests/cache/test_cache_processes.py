#!/usr/bin/env python3
"""Multi-process tests of the shared token cache (DESIGN.md section 5).

Each case starts token_probe processes (one TokenCache operation each) against
one state directory and checks what the token source saw and what the cache
file holds. The token source is selected with --source: "counting" (the
file-based CountingSource of tests/cache, no HTTP).

usage: test_cache_processes.py --probe PATH [--source counting] CASE
cases: single_flight warm kill delegated_rotation
"""
import argparse
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL: " + what, flush=True)
    return cond


class Env:
    def __init__(self, probe):
        self.probe = probe
        base = os.environ.get("TMPDIR") or "/tmp"
        self.tmp = tempfile.mkdtemp(prefix="o365-cache-", dir=base)
        self.state = os.path.join(self.tmp, "state")
        self.src = os.path.join(self.tmp, "source")
        os.mkdir(self.src)
        self.secret = os.path.join(self.tmp, "secret")
        fd = os.open(self.secret, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"client-secret-for-tests\n")
        os.close(fd)
        self.log = os.path.join(self.tmp, "log")
        self.conf = os.path.join(self.tmp, "o365relay.conf")
        with open(self.conf, "w") as f:
            f.write(
                "[relay]\nstate_dir = %s\nlog = file:%s\nlog_level = debug\n"
                "[entra]\ntenant = contoso.onmicrosoft.com\n"
                "client_id = 00000000-0000-0000-0000-000000000001\n"
                "client_secret_file = %s\n"
                "[account app]\nmailbox = app@contoso.com\n"
                "[account user]\nmailbox = user@contoso.com\nflow = delegated\n"
                % (self.state, self.log, self.secret))

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def args(self, account, op="get", sleep_ms=0, extra=(), start_at=None):
        a = [self.probe, "-c", self.conf, "-a", account, "--op", op,
             "--source", "counting:" + self.src, "--source-sleep-ms", str(sleep_ms)]
        if start_at is not None:
            a += ["--start-at", str(start_at)]
        return a + list(extra)

    def run(self, *a, **kw):
        p = subprocess.run(self.args(*a, **kw), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        return p.returncode, p.stdout.strip() + p.stderr.strip()

    def crowd(self, specs, margin_ms=2500):
        """Starts every (account, op, sleep, extra) at the same instant; returns [(rc, out)]."""
        start_at = int(time.time() * 1000) + margin_ms
        procs = [subprocess.Popen(self.args(acc, op, sl, ex, start_at=start_at),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for (acc, op, sl, ex) in specs]
        spawned = int(time.time() * 1000)
        if spawned > start_at:
            print("note: spawning took longer than the start margin (%d ms late)"
                  % (spawned - start_at))
        out = []
        for p in procs:
            o, e = p.communicate(timeout=180)
            out.append((p.returncode, (o.strip() + " " + e.strip()).strip()))
        return out

    def count(self):
        try:
            with open(os.path.join(self.src, "count")) as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0

    def requests(self):
        try:
            with open(os.path.join(self.src, "requests")) as f:
                return [l.split() for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def entry_path(self, account):
        return os.path.join(self.state, "tokens", account + ".json")

    def entry(self, account):
        with open(self.entry_path(account)) as f:
            return json.load(f)

    def source_refresh(self):
        with open(os.path.join(self.src, "refresh")) as f:
            return f.read().strip()


def digest_of(out):
    for w in out.split():
        if w.startswith("digest="):
            return w[7:]
    return None


def check_entry_file(env, account):
    p = env.entry_path(account)
    st = os.lstat(p)
    check(stat.S_ISREG(st.st_mode), "%s is a regular file" % p)
    check(stat.S_IMODE(st.st_mode) == 0o600, "%s has mode 0600 (%o)" % (p, stat.S_IMODE(st.st_mode)))
    check(st.st_uid == os.geteuid(), "%s is owned by the service user" % p)
    d = os.lstat(os.path.dirname(p))
    check(stat.S_IMODE(d.st_mode) == 0o700, "tokens directory has mode 0700")
    e = env.entry(account)
    for k in ("version", "account", "access_token", "expires_at", "obtained_at",
              "credential_fingerprint", "last_error"):
        check(k in e, "entry has field %s" % k)
    return e


def case_single_flight(env, n=50):
    # Cold cache: n processes at once, exactly one request, one token for all.
    res = env.crowd([("app", "get", 300, ())] * n)
    bad = [r for r in res if r[0] != 0]
    check(not bad, "all %d processes succeed (failures: %s)" % (n, bad[:3]))
    digests = {digest_of(o) for _, o in res}
    check(len(digests) == 1, "all processes got the same token (%d distinct)" % len(digests))
    check(env.count() == 1, "cold cache: exactly one token request (saw %d)" % env.count())
    check_entry_file(env, "app")
    print("cold: %d processes, %d request(s), %d distinct token(s)"
          % (n, env.count(), len(digests)))

    # Due for refresh (inside the window): again exactly one request.
    rc, out = env.run("app", "store", extra=["--store-access", "tok-stored-inside-window",
                                             "--expires-in", "400"])
    check(rc == 0, "store: " + out)
    before = env.count()
    res = env.crowd([("app", "get", 300, ())] * n)
    check(all(r[0] == 0 for r in res), "all processes succeed inside the window")
    digests = {digest_of(o) for _, o in res}
    check(len(digests) == 1, "inside window: one token for all (%d distinct)" % len(digests))
    check(env.count() - before == 1,
          "inside window: exactly one refresh (saw %d)" % (env.count() - before))
    print("inside window: %d processes, %d request(s)" % (n, env.count() - before))


def case_warm(env, n=50):
    rc, out = env.run("app", "get")
    check(rc == 0, "first get: " + out)
    first = digest_of(out)
    st0 = os.stat(env.entry_path("app"))
    res = env.crowd([("app", "get", 300, ())] * n)
    check(all(r[0] == 0 for r in res), "all warm processes succeed")
    check({digest_of(o) for _, o in res} == {first}, "warm processes got the cached token")
    check(env.count() == 1, "warm cache: no request (count %d, expected 1)" % env.count())
    st1 = os.stat(env.entry_path("app"))
    check((st0.st_ino, st0.st_mtime_ns) == (st1.st_ino, st1.st_mtime_ns),
          "warm cache: the entry was not rewritten")
    print("warm: %d processes, %d new request(s)" % (n, env.count() - 1))


def case_kill(env, rounds=60):
    rng = random.Random(os.environ.get("O365_TEST_SEED", "kill"))
    stats = {"before_request": 0, "between_request_and_write": 0, "after_write": 0,
             "temp_left": 0}
    rc, out = env.run("app", "get")
    check(rc == 0, "initial get: " + out)
    for i in range(rounds):
        kind = i % 3
        sleep_ms, delay = [(0, rng.uniform(0, 0.03)), (100, rng.uniform(0, 0.16)),
                           (20, rng.uniform(0.0, 0.08))][kind]
        before_count = env.count()
        before_tok = env.entry("app")["access_token"] if os.path.exists(env.entry_path("app")) else None
        p = subprocess.Popen(env.args("app", "force", sleep_ms),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        tmp = os.path.join(env.state, "tokens", ".app.json.tmp")
        if os.path.exists(tmp):
            stats["temp_left"] += 1
        # Whatever the moment of death, the entry is the old one or the new one.
        if os.path.exists(env.entry_path("app")):
            try:
                e = env.entry("app")
            except ValueError as ex:
                check(False, "round %d: entry not valid JSON after kill: %s" % (i, ex))
                continue
            check(e.get("account") == "app", "round %d: entry intact" % i)
            made = env.count() > before_count
            updated = e.get("access_token") != before_tok
            if not made:
                stats["before_request"] += 1
            elif not updated:
                stats["between_request_and_write"] += 1
            else:
                stats["after_write"] += 1
        # The next process reads or replaces it cleanly, without waiting for a lock.
        t0 = time.time()
        rc, out = env.run("app", "get")
        check(rc == 0, "round %d: get after kill: %s" % (i, out))
        check(time.time() - t0 < 10, "round %d: no stale lock" % i)
        mid = env.count()
        rc2, out2 = env.run("app", "get")
        check(rc2 == 0 and digest_of(out2) == digest_of(out),
              "round %d: next get reads the same token" % i)
        check(env.count() == mid, "round %d: warm get makes no request" % i)
        check_entry_file(env, "app")
        # A forced refresh after the kill also works (stale temp file replaced).
        if i % 10 == 9:
            rc3, out3 = env.run("app", "force")
            check(rc3 == 0, "round %d: force after kill: %s" % (i, out3))
    print("kill: %d rounds; killed %s" % (rounds, stats))


def case_delegated_rotation(env, n_force=30, n_refresh=10, n_get=10):
    seed_rt = "rt-seed-0123456789abcdef"
    with open(os.path.join(env.src, "refresh"), "w") as f:
        f.write(seed_rt + "\n")
    rc, out = env.run("user", "get")
    check(rc == 78 and "o365relayctl login user" in out,
          "delegated without refresh token: configuration error (%d %s)" % (rc, out))
    check(env.count() == 0, "no request without a refresh token")
    rc, out = env.run("user", "store", extra=["--store-access", "access-from-login-0123",
                                              "--store-refresh", seed_rt])
    check(rc == 0, "store: " + out)
    specs = ([("user", "force", 40, ())] * n_force +
             [("user", "refresh", 40, ("--rejected", "access-from-login-0123"))] * n_refresh +
             [("user", "get", 40, ())] * n_get)
    random.Random(3).shuffle(specs)
    res = env.crowd(specs)
    bad = [r for r in res if r[0] != 0]
    check(not bad, "all concurrent refreshes succeed (failures: %s)" % bad[:3])
    refused = [r for r in env.requests() if r[2] != "ok"]
    check(not refused, "no request used a stale refresh token (%d refused)" % len(refused))
    e = check_entry_file(env, "user")
    latest = env.source_refresh()
    check(e.get("refresh_token") == latest,
          "stored refresh token is the latest one issued")
    check(env.count() >= n_force, "every forced refresh made a request (%d)" % env.count())
    before = env.count()
    rc, out = env.run("user", "force")
    check(rc == 0, "the stored refresh token is accepted afterwards: " + out)
    check(env.count() == before + 1, "one more request")
    check(env.entry("user").get("refresh_token") == env.source_refresh(),
          "rotated again and stored")
    print("delegated: %d processes, %d requests, 0 refused, latest refresh token stored"
          % (len(specs), env.count()))


CASES = {"single_flight": case_single_flight, "warm": case_warm, "kill": case_kill,
         "delegated_rotation": case_delegated_rotation}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    a = ap.parse_args()
    env = Env(a.probe)
    try:
        CASES[a.case](env)
    except Exception as ex:  # a crash is a failure, with the log for diagnosis
        FAILURES.append("exception: %r" % ex)
        raise
    finally:
        if FAILURES and os.path.exists(env.log):
            with open(env.log) as f:
                sys.stdout.write("--- cache log (tail) ---\n" + "".join(f.readlines()[-30:]))
        env.close()
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("PASS " + a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
