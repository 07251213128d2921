#!/usr/bin/env python3
"""--help and --version of every binary: exit 0, the usage or "<binary> <version>"
on stdout, nothing on stderr, and nothing else happens: the transport prints no
status line, reads no message and makes no connection (checked with strace when
it is available: no connect(2), no bind(2), no read(2) of stdin).

Usage: test_cli.py VERSION TRANSPORT MILTER CTL
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

VERSION = None
BINARIES = {}  # name -> path

# A status line of the transport: an enhanced status code first.
STATUS_LINE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} ", re.M)


def run(argv, cwd):
    """Runs argv with a message on stdin and no config at the default path."""
    return subprocess.run(argv, input=b"Subject: must not be read\n\nbody\n",
                          capture_output=True, timeout=30, cwd=cwd)


class HelpAndVersion(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="o365cli-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_version(self):
        for name, path in BINARIES.items():
            with self.subTest(binary=name):
                p = run([path, "--version"], self.tmp)
                self.assertEqual(p.returncode, 0, p)
                self.assertEqual(p.stdout.decode(), "%s %s\n" % (name, VERSION))
                self.assertEqual(p.stderr, b"")

    def test_help(self):
        for name, path in BINARIES.items():
            for opt in ("--help", "-h") if name != "o365relay-transport" else ("--help",):
                with self.subTest(binary=name, option=opt):
                    p = run([path, opt], self.tmp)
                    out = p.stdout.decode()
                    self.assertEqual(p.returncode, 0, p)
                    self.assertTrue(out.startswith("usage: " + name), out)
                    self.assertIn("--version", out)
                    self.assertEqual(p.stderr, b"")
                    self.assertIsNone(STATUS_LINE.search(out), out)
                    self.assertEqual(os.listdir(self.tmp), [])  # no file made

    def test_transport_help_with_delivery_arguments_is_a_usage_error(self):
        # Postfix ran it: a deferral (4.3.5, exit 75), never a bounce or a help text.
        p = run([BINARIES["o365relay-transport"], "--help", "-f", "a@b.c", "--", "x@y.z"],
                self.tmp)
        self.assertEqual(p.returncode, 75, p)
        self.assertRegex(p.stdout.decode(), r"^4\.3\.5 .*given alone.*\n$")

    @unittest.skipUnless(shutil.which("strace"), "strace is not installed")
    def test_nothing_else_happens(self):
        for name, path in BINARIES.items():
            for opt in ("--help", "--version"):
                with self.subTest(binary=name, option=opt):
                    trace = os.path.join(self.tmp, "trace")
                    p = run(["strace", "-f", "-qq", "-o", trace, "-e",
                             "trace=connect,bind,listen,read", path, opt], self.tmp)
                    if p.returncode != 0 and b"ptrace" in p.stderr:
                        self.skipTest("strace cannot trace here: %s" % p.stderr.decode())
                    self.assertEqual(p.returncode, 0, p)
                    with open(trace) as f:
                        calls = f.read()
                    os.unlink(trace)
                    for call in ("connect(", "bind(", "listen(", "read(0,"):
                        self.assertNotIn(call, calls, "%s %s: %s" % (name, opt, calls))


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    VERSION = sys.argv[1]
    for path in sys.argv[2:5]:
        BINARIES[os.path.basename(path)] = os.path.abspath(path)
    unittest.main(argv=[sys.argv[0]] + sys.argv[5:], verbosity=2)
