#!/usr/bin/env python3
"""[entra] proxy and [graph] proxy through a real CONNECT proxy.

Usage: test_proxy.py /path/to/o365relayctl /path/to/o365relay-transport [unittest args]

A private tinyproxy (own config file, free loopback port, foreground, never the
system service) stands between the relay and the fakes (fake_entra.py,
fake_graph.py). Checks (docs/clouds.md, "Proxies"):
- `o365relayctl token refresh` goes through [entra] proxy: tinyproxy logs the
  CONNECT to the fake Entra, and the token is cached;
- an empty proxy key means no proxy, whatever https_proxy in the environment says;
- with the proxy stopped the request fails (temporary, exit 75) with a message
  that names the proxy;
- a Graph delivery (method = graph) goes through [graph] proxy;
- `o365relayctl check` prints the cloud and the proxies.
Exit 77 (skipped) when tinyproxy is not installed.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "transport"))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
import harness  # noqa: E402
from harness import MAILBOX  # noqa: E402
from test_fake_graph import GraphEnv  # noqa: E402

CTL = None
TRANSPORT = None
TEMPFAIL = 75
MESSAGE = b"From: noreply@contoso.com\nTo: bob@example.org\nSubject: proxy\n\nThrough.\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TinyProxy:
    """A private tinyproxy on 127.0.0.1:port, logging every connection."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(directory, "tinyproxy.log")
        self.conf = os.path.join(directory, "tinyproxy.conf")
        with open(self.conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nTimeout 30\nLogFile \"%s\"\nLogLevel Connect\n"
                    "MaxClients 20\nAllow 127.0.0.1\n" % (self.port, self.log))
            # No ConnectPort line: CONNECT to any port (the fakes' are random).
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen(["tinyproxy", "-d", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError("tinyproxy did not start; see %s" % self.log)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def connects(self, port):
        """How many CONNECTs to 127.0.0.1:port the log shows."""
        try:
            with open(self.log, errors="replace") as f:
                return sum(1 for line in f if "CONNECT 127.0.0.1:%d " % port in line)
        except FileNotFoundError:
            return 0


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = GraphEnv("net")
        cls.env.start_entra_for_graph()
        cls.graph_port = cls.env.start_graph()
        cls.proxy = TinyProxy(os.path.join(cls.env.dir, "proxy"))
        cls.proxy.start()
        cls.seq = 0

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.env.close()

    def setUp(self):
        type(self).seq += 1
        if self.proxy.proc is None:
            self.proxy.start()
        self.env.set_graph_faults([])
        self.env.set_graph_config({})
        self.tdir = os.path.join(self.env.dir, "t%03d" % self.seq)
        os.makedirs(self.tdir)
        self.state_dir = os.path.join(self.tdir, "state")
        self.log = os.path.join(self.tdir, "relay.log")

    def write_config(self, entra_proxy=None, graph_proxy=None, method="smtp"):
        e = self.env.entra_settings()
        if entra_proxy is not None:
            e["proxy"] = entra_proxy
        g = {"endpoint": "https://127.0.0.1:%d" % self.graph_port,
             "ca_file": os.path.join(self.env.certs, "ca.crt"), "http_timeout": 10}
        if graph_proxy is not None:
            g["proxy"] = graph_proxy

        def sect(name, d):
            return "[%s]\n" % name + "".join("%s = %s\n" % kv for kv in d.items())
        text = (sect("relay", {"state_dir": self.state_dir, "log": "file:" + self.log,
                               "log_level": "debug", "user": "root"})
                + sect("smtp", {"host": "localhost", "port": 9, "deadline": 60,
                                "ca_file": os.path.join(self.env.certs, "ca.crt")})
                + sect("entra", e) + sect("graph", g)
                + sect("account noreply", {"mailbox": MAILBOX, "method": method,
                                           "senders": "noreply@contoso.com"}))
        path = os.path.join(self.tdir, "o365relay.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def ctl(self, conf, *args, env=None):
        p = subprocess.run([CTL, "-c", conf, *args], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL, env=env)
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    def cached(self, name="noreply"):
        return os.path.exists(os.path.join(self.state_dir, "tokens", name + ".json"))

    # --- token requests ------------------------------------------------------------
    def test_token_refresh_goes_through_the_entra_proxy(self):
        conf = self.write_config(entra_proxy=self.proxy.url)
        before = self.proxy.connects(self.env.entra_port)
        rc, out = self.ctl(conf, "token", "refresh", "noreply")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.proxy.connects(self.env.entra_port) - before, 1,
                         "tinyproxy saw no CONNECT to the fake Entra")
        self.assertTrue(self.cached())

    def test_empty_proxy_is_none_whatever_the_environment_says(self):
        conf = self.write_config()
        before = self.proxy.connects(self.env.entra_port)
        env = dict(os.environ, https_proxy=self.proxy.url, HTTPS_PROXY=self.proxy.url,
                   all_proxy=self.proxy.url, no_proxy="")
        rc, out = self.ctl(conf, "token", "refresh", "noreply", env=env)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.proxy.connects(self.env.entra_port), before,
                         "the environment's https_proxy was used")

    def test_proxy_is_used_whatever_no_proxy_says(self):
        conf = self.write_config(entra_proxy=self.proxy.url)
        before = self.proxy.connects(self.env.entra_port)
        env = dict(os.environ, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
        rc, out = self.ctl(conf, "token", "refresh", "noreply", env=env)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.proxy.connects(self.env.entra_port) - before, 1)

    def test_a_stopped_proxy_fails_naming_the_proxy(self):
        self.proxy.stop()
        conf = self.write_config(entra_proxy=self.proxy.url)
        rc, out = self.ctl(conf, "token", "refresh", "noreply")
        self.assertEqual(rc, TEMPFAIL, out)
        self.assertIn("through the proxy %s" % self.proxy.url, out)

    # --- Graph -------------------------------------------------------------------------
    def deliver(self, conf):
        argv = [TRANSPORT, "-c", conf, "-f", MAILBOX, "-q", "4F2A31C2D", "-n", "noreply",
                "--", "bob@example.org"]
        p = subprocess.run(argv, input=MESSAGE, capture_output=True, timeout=90)
        return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode(
            "utf-8", "replace")

    def test_graph_delivery_goes_through_both_proxies(self):
        conf = self.write_config(entra_proxy=self.proxy.url, graph_proxy=self.proxy.url,
                                 method="graph")
        entra0 = self.proxy.connects(self.env.entra_port)
        graph0 = self.proxy.connects(self.graph_port)
        got0 = len(self.env.received("bob@example.org"))
        rc, out = self.deliver(conf)
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(self.env.received("bob@example.org")) - got0, 1)
        self.assertGreaterEqual(self.proxy.connects(self.env.entra_port) - entra0, 1)
        self.assertGreaterEqual(self.proxy.connects(self.graph_port) - graph0, 1)

    def test_graph_delivery_with_the_graph_proxy_stopped_defers_naming_it(self):
        dead = "http://127.0.0.1:%d" % free_port()
        conf = self.write_config(graph_proxy=dead, method="graph")
        got0 = len(self.env.received("bob@example.org"))
        rc, out = self.deliver(conf)
        self.assertEqual(rc, TEMPFAIL, out)
        self.assertEqual(len(self.env.received("bob@example.org")), got0)
        with open(self.log, errors="replace") as f:
            self.assertIn("through the proxy " + dead, out + f.read())

    # --- check -------------------------------------------------------------------------
    def test_check_prints_cloud_and_proxies(self):
        conf = self.write_config(entra_proxy=self.proxy.url, method="graph")
        rc, out = self.ctl(conf, "check", "noreply")
        self.assertIn("cloud global: Entra ID https://127.0.0.1:%d" % self.env.entra_port, out)
        self.assertIn("proxy Entra ID %s, Graph none, SMTP none" % self.proxy.url, out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if shutil.which("tinyproxy") is None:
        print("tinyproxy is not installed: skipped (scripts/install-deps.sh installs it)")
        sys.exit(77)
    CTL = os.path.abspath(sys.argv[1])
    TRANSPORT = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
