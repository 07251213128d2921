#!/usr/bin/env python3
"""Socket hygiene of the REAL o365relay-milter on a unix socket:

1. a stale socket file (left by a crash: a socket nobody listens on) does not
   stop the start: the milter removes it and listens;
2. SIGTERM removes the socket;
3. a second milter on the path of a live one refuses to start with a clear
   error (exit 78), and the first one keeps its socket and keeps answering;
4. a file that is not a socket is never removed: the start is refused.

Usage: test_socket.py /path/to/o365relay-milter
"""
import os
import socket
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failures, Milter, TempDir  # noqa: E402

BIN = sys.argv[1]
F = Failures()


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def answers(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def make_stale_socket(path):
    """A socket file with nobody listening, as a killed milter leaves it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()


def run_second(milter, timeout=20):
    """Starts a second milter with the same config; returns (exit status, stderr)."""
    try:
        p = subprocess.run([milter.binary, "-c", milter.conf], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "still running after %ds: it took over the socket" % timeout
    return p.returncode, p.stderr.decode(errors="replace")


def test_stale_socket_then_sigterm(tmp):
    path = os.path.join(tmp.path, "milter.sock")
    make_stale_socket(path)
    F.check(is_socket(path) and not answers(path), "precondition: a stale socket file")
    m = Milter(BIN, tmp.path, socket_spec="unix:" + path)
    try:
        m.start()
        F.check(answers(path), "starts over a stale socket and listens on it")
        F.check("removed the stale milter socket" in m.log(), "the log says the stale socket went")
    except RuntimeError as e:
        F.check(False, "starts over a stale socket: %s" % e)
    status = m.stop()
    F.check(status == 0, "SIGTERM: exit 0 (got %r)" % status)
    F.check(not os.path.lexists(path), "SIGTERM removes the socket")


def test_live_socket_refused(tmp):
    path = os.path.join(tmp.path, "milter.sock")
    first = Milter(BIN, tmp.path, socket_spec="unix:" + path)
    first.start()
    try:
        status, err = run_second(first)
        F.check(status == 78, "a second milter on a live socket exits 78 (got %r)" % status)
        F.check("answers on this socket" in err and path in err,
                "its error names the socket and why:\n" + err)
        F.check(is_socket(path) and answers(path), "the first milter's socket is untouched")
    finally:
        F.check(first.stop() == 0, "the first milter stops cleanly")
    F.check(not os.path.lexists(path), "and removes its socket")


def test_not_a_socket_kept(tmp):
    path = os.path.join(tmp.path, "milter.sock")
    with open(path, "w") as f:
        f.write("not a socket\n")
    m = Milter(BIN, tmp.path, socket_spec="unix:" + path)
    status, err = run_second(m)
    F.check(status == 78, "a regular file at the socket path: exit 78 (got %r)" % status)
    F.check("not a socket" in err, "the error says it is not a socket:\n" + err)
    with open(path) as f:
        F.check(f.read() == "not a socket\n", "the file is not removed")


def main():
    for test in (test_stale_socket_then_sigterm, test_live_socket_refused,
                 test_not_a_socket_kept):
        print("--", test.__name__, flush=True)
        tmp = TempDir()
        try:
            test(tmp)
        finally:
            tmp.close()
    F.exit()


if __name__ == "__main__":
    main()
