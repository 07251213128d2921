#!/usr/bin/env python3
"""Multi-process tests of the shared token cache (docs/design.md section Token cache).

Each case starts token_probe processes (one TokenCache operation each) against
one state directory and checks what the token endpoint saw and what the cache
file holds. Two token sources:
  counting  the file-based CountingSource of tests/cache (no HTTP)
  entra     the production EntraClient over HTTPS against tests/fakes/fake_entra.py
            (test CA made at test time, loopback, free port; requests counted
            in the fake's stats.json; refresh tokens rotate and a rotated one
            is refused)

usage: test_cache_processes.py --probe PATH [--source counting|entra] CASE
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
HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(HERE, "..", "fakes")
CLIENT_ID = "00000000-0000-0000-0000-000000000001"
PUBLIC_CLIENT = "11111111-0000-0000-0000-00000000000p"
SECRET = "client-secret-for-tests"
SEED_RT = "0.AR-seed-refresh-token-0123456789abcdef"


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def write_atomic(path, text, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, text.encode())
    os.close(fd)
    os.rename(tmp, path)


class CountingBackend:
    """tests/cache/counting_source.cpp: state files in DIR."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "source")
        os.mkdir(self.dir)
        self.sleep_ms = 0

    def entra_config(self):
        return ""

    def probe_args(self):
        return ["--source", "counting:" + self.dir, "--source-sleep-ms", str(self.sleep_ms)]

    def set_sleep(self, ms):
        self.sleep_ms = ms

    def seed_refresh_token(self, rt):
        write_atomic(os.path.join(self.dir, "refresh"), rt + "\n")

    def count(self):
        try:
            with open(os.path.join(self.dir, "count")) as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0

    def refused(self):
        try:
            with open(os.path.join(self.dir, "requests")) as f:
                return sum(1 for l in f if l.split()[2:3] != ["ok"])
        except FileNotFoundError:
            return 0

    def refresh_token_is_current(self, rt):
        with open(os.path.join(self.dir, "refresh")) as f:
            return f.read().strip() == rt

    def settle(self):
        pass  # requests are counted synchronously by the probe itself

    def close(self):
        pass


class EntraBackend:
    """tests/fakes/fake_entra.py over HTTPS with a test CA."""

    def __init__(self, tmp):
        self.ca = os.path.join(tmp, "ca")
        self.state = os.path.join(tmp, "entra")
        os.mkdir(self.state)
        r = subprocess.run(["sh", os.path.join(FAKES, "make_test_ca.sh"), self.ca],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("make_test_ca.sh failed: " + r.stdout)
        cfg = {"tenants": ["contoso.onmicrosoft.com"],
               "signing_key": os.path.join(self.ca, "entra-signing.key"),
               "token_lifetime": 3599,
               "clients": {CLIENT_ID: {"secret": SECRET}, PUBLIC_CLIENT: {"public": True}},
               "refresh_tokens": {SEED_RT: {"client_id": PUBLIC_CLIENT,
                                            "mailbox": "user@contoso.com"}}}
        write_atomic(os.path.join(self.state, "config.json"), json.dumps(cfg, indent=1))
        self.set_sleep(0)
        self.log = open(os.path.join(tmp, "fake_entra.log"), "a")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(FAKES, "fake_entra.py"), "--state", self.state,
             "--cert", os.path.join(self.ca, "server.crt"),
             "--key", os.path.join(self.ca, "server.key")],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError("fake_entra did not start: %r" % line)
        self.port = int(line.split()[1])

    def entra_config(self):
        return ("authority = https://127.0.0.1:%d\nca_file = %s\nhttp_timeout = 10\n"
                % (self.port, os.path.join(self.ca, "ca.crt")))

    def probe_args(self):
        return ["--source", "entra"]

    def set_sleep(self, ms):
        faults = [{"kind": "slow", "delay": ms / 1000.0}] if ms else []
        write_atomic(os.path.join(self.state, "faults.json"), json.dumps(faults))

    def seed_refresh_token(self, rt):
        assert rt == SEED_RT  # seeded in config.json

    def stats(self):
        with open(os.path.join(self.state, "stats.json")) as f:
            return json.load(f)

    def count(self):
        return self.stats().get("by_endpoint", {}).get("token", 0)

    def refused(self):
        return sum(n for s, n in self.stats().get("by_status", {}).items() if s != "200")

    def settle(self):
        """Waits until a killed client's request (still in the fake) is counted."""
        last, stable_since = None, time.time()
        while time.time() - stable_since < 0.3:
            n = self.stats().get("total", 0)
            if n != last:
                last, stable_since = n, time.time()
            time.sleep(0.05)

    def refresh_token_is_current(self, rt):
        p = os.path.join(self.state, "refresh_tokens.json")
        with open(p) as f:
            issued = json.load(f)
        valid = [k for k, v in issued.items() if v.get("status", "valid") == "valid"]
        return valid == [rt]

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Env:
    def __init__(self, probe, source):
        self.probe = probe
        base = os.environ.get("TMPDIR") or "/tmp"
        self.tmp = tempfile.mkdtemp(prefix="o365-cache-", dir=base)
        self.backend = None
        self.backend = (EntraBackend if source == "entra" else CountingBackend)(self.tmp)
        self.state = os.path.join(self.tmp, "state")
        self.secret = os.path.join(self.tmp, "secret")
        write_atomic(self.secret, SECRET + "\n")
        self.log = os.path.join(self.tmp, "log")
        self.conf = os.path.join(self.tmp, "o365relay.conf")
        with open(self.conf, "w") as f:
            f.write(
                "[relay]\nstate_dir = %s\nlog = file:%s\nlog_level = debug\n"
                "[entra]\ntenant = contoso.onmicrosoft.com\nclient_id = %s\n"
                "client_secret_file = %s\n%s"
                "[account app]\nmailbox = app@contoso.com\n"
                "[account user]\nmailbox = user@contoso.com\nflow = delegated\n"
                "client_id = %s\nclient_secret_file =\n"
                % (self.state, self.log, CLIENT_ID, self.secret, self.backend.entra_config(),
                   PUBLIC_CLIENT))

    def close(self):
        if self.backend:
            self.backend.close()
        if not os.environ.get("O365_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def args(self, account, op="get", extra=(), start_at=None):
        a = [self.probe, "-c", self.conf, "-a", account, "--op", op] + self.backend.probe_args()
        if start_at is not None:
            a += ["--start-at", str(start_at)]
        return a + list(extra)

    def run(self, *a, **kw):
        p = subprocess.run(self.args(*a, **kw), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        return p.returncode, (p.stdout.strip() + " " + p.stderr.strip()).strip()

    def crowd(self, specs, margin_ms=3000):
        """Starts every (account, op, extra) at the same instant; returns [(rc, out)]."""
        start_at = int(time.time() * 1000) + margin_ms
        procs = [subprocess.Popen(self.args(acc, op, ex, start_at=start_at),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for (acc, op, ex) in specs]
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
        return self.backend.count()

    def entry_path(self, account):
        return os.path.join(self.state, "tokens", account + ".json")

    def entry(self, account):
        with open(self.entry_path(account)) as f:
            return json.load(f)


def digest_of(out):
    for w in out.split():
        if w.startswith("digest="):
            return w[7:]
    return None


def check_entry_file(env, account):
    p = env.entry_path(account)
    st = os.lstat(p)
    check(stat.S_ISREG(st.st_mode), "%s is a regular file" % p)
    check(stat.S_IMODE(st.st_mode) == 0o600,
          "%s has mode 0600 (%o)" % (p, stat.S_IMODE(st.st_mode)))
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
    env.backend.set_sleep(300)
    res = env.crowd([("app", "get", ())] * n)
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
    res = env.crowd([("app", "get", ())] * n)
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
    env.backend.set_sleep(300)
    res = env.crowd([("app", "get", ())] * n)
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
    # How long an uncontested forced refresh takes: the kill delays cover it.
    t0 = time.time()
    rc, out = env.run("app", "force")
    base = time.time() - t0
    check(rc == 0, "timing force: " + out)
    for i in range(rounds):
        kind = i % 3
        sleep_ms, delay = [(0, rng.uniform(0, base * 1.2)),
                           (100, rng.uniform(0, base + 0.12)),
                           (20, rng.uniform(base * 0.5, base + 0.04))][kind]
        env.backend.set_sleep(sleep_ms)
        before_count = env.count()
        before_tok = env.entry("app")["access_token"] \
            if os.path.exists(env.entry_path("app")) else None
        p = subprocess.Popen(env.args("app", "force"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        env.backend.set_sleep(0)
        env.backend.settle()
        if os.path.exists(os.path.join(env.state, "tokens", ".app.json.tmp")):
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
    print("kill: %d rounds (uncontested refresh %.0f ms); killed %s"
          % (rounds, base * 1000, stats))


def case_delegated_rotation(env, n_force=30, n_refresh=10, n_get=10):
    env.backend.seed_refresh_token(SEED_RT)
    rc, out = env.run("user", "get")
    check(rc == 78 and "o365relayctl login user" in out,
          "delegated without refresh token: configuration error (%d %s)" % (rc, out))
    check(env.count() == 0, "no request without a refresh token")
    rc, out = env.run("user", "store", extra=["--store-access", "access-from-login-0123",
                                              "--store-refresh", SEED_RT])
    check(rc == 0, "store: " + out)
    env.backend.set_sleep(40)
    specs = ([("user", "force", ())] * n_force +
             [("user", "refresh", ("--rejected", "access-from-login-0123"))] * n_refresh +
             [("user", "get", ())] * n_get)
    random.Random(3).shuffle(specs)
    res = env.crowd(specs)
    env.backend.set_sleep(0)
    bad = [r for r in res if r[0] != 0]
    check(not bad, "all concurrent refreshes succeed (failures: %s)" % bad[:3])
    check(env.backend.refused() == 0,
          "no request used a stale refresh token (%d refused)" % env.backend.refused())
    e = check_entry_file(env, "user")
    stored = e.get("refresh_token", "")
    check(stored != SEED_RT and env.backend.refresh_token_is_current(stored),
          "stored refresh token is the latest one issued (the only valid one)")
    check(env.count() >= n_force, "every forced refresh made a request (%d)" % env.count())
    before = env.count()
    rc, out = env.run("user", "force")
    check(rc == 0, "the stored refresh token is accepted afterwards: " + out)
    check(env.count() == before + 1, "one more request")
    check(env.backend.refresh_token_is_current(env.entry("user").get("refresh_token", "")),
          "rotated again and stored")
    print("delegated: %d processes, %d requests, %d refused, latest refresh token stored"
          % (len(specs), env.count(), env.backend.refused()))


CASES = {"single_flight": case_single_flight, "warm": case_warm, "kill": case_kill,
         "delegated_rotation": case_delegated_rotation}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True)
    ap.add_argument("--source", choices=["counting", "entra"], default="counting")
    ap.add_argument("case", choices=sorted(CASES))
    a = ap.parse_args()
    env = Env(a.probe, a.source)
    try:
        CASES[a.case](env)
    except Exception as ex:  # a crash is a failure, with the log for diagnosis
        FAILURES.append("exception: %r" % ex)
        raise
    finally:
        if FAILURES and os.path.exists(env.log):
            with open(env.log) as f:
                sys.stdout.write("--- cache log (tail) ---\n" + "".join(f.readlines()[-30:]))
        # No token or refresh token may reach the cache's log.
        if os.path.exists(env.log):
            with open(env.log) as f:
                log = f.read()
            for name in ("app", "user"):
                if os.path.exists(env.entry_path(name)):
                    e = env.entry(name)
                    for k in ("access_token", "refresh_token"):
                        v = e.get(k)
                        check(not v or v not in log, "%s of %s not in the log" % (k, name))
            check(SEED_RT not in log, "seed refresh token not in the log")
        env.close()
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("PASS %s (%s)" % (a.case, a.source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
