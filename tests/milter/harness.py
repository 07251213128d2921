"""Shared helpers for the milter tests: temporary dirs, configs, starting the REAL
o365relay-milter on a free loopback port, and running miltertest Lua scripts.

Standard library only.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ACCOUNTS = """
[account noreply]
mailbox = noreply@contoso.com
senders = noreply@contoso.com, @apps.contoso.com

[account alerts]
mailbox = alerts@contoso.com
add_header = X-Department: operations
"""

# Lua helpers prepended to every miltertest script. `port` and `qid` come from -D.
LUA_PRELUDE = r"""
function check(r, what)
  if r ~= nil then error(what .. ": " .. tostring(r)) end
end
function expect(conn, want, what)
  local got = mt.getreply(conn)
  if got ~= want then
    error(what .. ": reply " .. tostring(got) .. ", expected " .. tostring(want))
  end
end
function open_conn(smtp)
  local conn = mt.connect(sock, 50, 0.1)
  if conn == nil then error("cannot connect to " .. sock) end
  if smtp then
    mt.macro(conn, SMFIC_CONNECT, "{daemon_addr}", "127.0.0.1", "{daemon_port}", "25", "{client_addr}", "192.0.2.1")
    check(mt.conninfo(conn, "client.example", "192.0.2.1"), "conninfo")
  else
    -- as Postfix cleanup(8) emulates a sendmail(1) submission
    mt.macro(conn, SMFIC_CONNECT, "{daemon_addr}", "127.0.0.1", "{daemon_port}", "0", "{client_addr}", "127.0.0.1")
    check(mt.conninfo(conn, "localhost", "127.0.0.1"), "conninfo")
  end
  expect(conn, SMFIR_CONTINUE, "connect")
  return conn
end
function mail(conn, from, ...)
  mt.macro(conn, SMFIC_MAIL, "i", qid, "{auth_authen}", "app1")
  check(mt.mailfrom(conn, from, ...), "mailfrom")
end
function rcpt(conn, to)
  mt.macro(conn, SMFIC_RCPT, "i", qid)
  check(mt.rcptto(conn, to), "rcptto " .. to)
end
function header(conn, name, value)
  check(mt.header(conn, name, value), "header " .. name)
end
function eom(conn)
  check(mt.eom(conn), "eom")
end
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class TempDir:
    def __init__(self, prefix="o365milter-"):
        self.path = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR", "/tmp"))

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Milter:
    """One o365relay-milter process with its own config, state dir and log."""

    def __init__(self, binary, tmp, policy="", milter="", accounts=ACCOUNTS, entra="",
                 socket_spec=None):
        self.binary = binary
        self.dir = tmp
        self.port = free_port()
        self.sock = socket_spec or "inet:%d@127.0.0.1" % self.port
        self.conf = os.path.join(tmp, "o365relay.conf")
        self.logfile = os.path.join(tmp, "milter.log")
        self.state = os.path.join(tmp, "state")
        os.makedirs(self.state, mode=0o700, exist_ok=True)
        self.secret = os.path.join(tmp, "client.secret")
        write(self.secret, "not-a-real-secret-0123456789\n", 0o600)
        self.proc = None
        self.write_config(policy=policy, milter=milter, accounts=accounts, entra=entra)

    def config_text(self, policy="", milter="", accounts=ACCOUNTS, entra=""):
        # The token endpoint is a closed loopback port unless a test gives one:
        # the refresher must never reach the Internet.
        entra = entra or "authority = https://127.0.0.1:9\n"
        return ("[relay]\nstate_dir = %s\nlog = file:%s\nlog_level = debug\nuser = root\n\n"
                "[entra]\ntenant = contoso.onmicrosoft.com\n"
                "client_id = 11111111-2222-3333-4444-555555555555\n"
                "client_secret_file = %s\n%s\n%s\n"
                "[milter]\nsocket = %s\n%s\n"
                "[policy]\n%s\n" % (self.state, self.logfile, self.secret, entra, accounts,
                                     self.sock, milter, policy))

    def write_config(self, **kw):
        write(self.conf, self.config_text(**kw))

    def start(self, timeout=10):
        self.proc = subprocess.Popen([self.binary, "-c", self.conf],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("milter exited %d: %s" % (
                    self.proc.returncode, self.proc.stderr.read().decode()))
            if "started: socket" in self.log():
                return
            time.sleep(0.05)
        raise RuntimeError("milter did not start; log:\n" + self.log())

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("milter did not stop on SIGTERM within %ds" % timeout)
        return self.proc.returncode if self.proc else None

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=10, after=0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log()[after:]:
                return True
            time.sleep(0.05)
        raise AssertionError("log never showed %r; log:\n%s" % (text, self.log()[after:]))

    def lua(self, body, qid="TESTQID", timeout=30):
        """Runs a miltertest script (prelude + body); returns (rc, stdout+stderr)."""
        path = os.path.join(self.dir, "t%d.lua" % int(time.time() * 1e6))
        write(path, LUA_PRELUDE + body)
        p = subprocess.run(["miltertest", "-D", "sock=" + self.sock.replace(
            "unix:", "unix:"), "-D", "qid=" + qid, "-s", path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        os.unlink(path)
        return p.returncode, p.stdout.decode(errors="replace")


class Failures:
    def __init__(self):
        self.items = []

    def check(self, cond, what):
        if not cond:
            self.items.append(what)
            print("FAIL:", what, flush=True)
        else:
            print("ok:", what.split("\n")[0], flush=True)

    def exit(self):
        if self.items:
            print("%d check(s) failed" % len(self.items))
            raise SystemExit(1)
        print("all checks passed")
