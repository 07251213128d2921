"""stack: the whole o365relay path on loopback, for the integration tests and
the demo: fake Entra + fake Office 365 (tests/fakes), the real
o365relay-milter and o365relay-transport, and a private Postfix instance wired
as conf/ recommends (smtpd_milters, sender_dependent_default_transport_maps ->
o365:ACCOUNT, the pipe(8) entry of docs/design.md section 4, recipient limit 1,
concurrency 3).

With graph=True it also starts the fake Microsoft Graph (tests/fakes/fake_graph.py),
sets [graph] endpoint/ca_file, adds the account GRAPH_ACCOUNT (method = graph,
mailbox GRAPH_MAILBOX) routed as o365graph:GRAPH_ACCOUNT, and the o365graph
master.cf entry conf/ recommends for Graph accounts (maxproc 4, recipient limit
100, concurrency 4). graph_faults are the fake Graph's fault rules.

Contract: Stack(build_dir, name, policy=..., faults=...) starts everything
(raises with the relevant log tail when a part does not come up); send()
submits one message over SMTP to the private smtpd and returns what the
session said; with bare_postfix=True the private Postfix gets none of
o365relay's settings and is not started (the caller configures it, e.g. from
`o365relayctl postfix-config`, and calls st.postfix.start()); close() stops
every process it started and removes its directory (kept when
KEEP_TEST_DIRS=1). Needs root: Postfix's master runs as root and pipe(8)
runs the transport as the service user o365relay, which is
created when missing. Binaries are copied into the stack's directory so that
the service user can run them wherever the build tree is. Not thread-safe.
"""
import grp
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "transport"))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (tests/transport/harness.py: the fakes)
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from test_fake_graph import GraphEnv  # noqa: E402  (harness.Env + the fake Graph)
from postfix_instance import PostfixInstance  # noqa: E402

SERVICE_USER = "o365relay"

ACCOUNTS = """
[account noreply]
mailbox = noreply@contoso.com
senders = noreply@contoso.com, @apps.contoso.com

[account alerts]
mailbox = alerts@contoso.com
senders = alerts@contoso.com
add_header = X-Department: operations
"""

# What the fake Office 365 lets each mailbox send as (Exchange's Send As rights).
MAILBOXES = {
    "noreply@contoso.com": {"send_as": ["@apps.contoso.com"]},
    "alerts@contoso.com": {"send_as": []},
}

SENDER_ROUTES = """
noreply@contoso.com   o365:noreply
@apps.contoso.com     o365:noreply
alerts@contoso.com    o365:alerts
<>                    o365:noreply
"""

GRAPH_ACCOUNT = "graphy"
GRAPH_MAILBOX = "graph@contoso.com"
GRAPH_ACCOUNTS = """
[account %s]
mailbox = %s
senders = %s, @graph.contoso.com
method = graph
""" % (GRAPH_ACCOUNT, GRAPH_MAILBOX, GRAPH_MAILBOX)
# What the fake Graph knows: the Graph account's mailbox and its Send As rights.
GRAPH_MAILBOXES = {GRAPH_MAILBOX: {"send_as": ["@graph.contoso.com"]}}
GRAPH_ROUTES = """
%s     o365graph:%s
@graph.contoso.com    o365graph:%s
""" % (GRAPH_MAILBOX, GRAPH_ACCOUNT, GRAPH_ACCOUNT)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ensure_service_user():
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        # exactly as the package's postinst makes it (scripts/package-test.sh checks it)
        subprocess.run(["adduser", "--quiet", "--system", "--group", "--home",
                        "/var/lib/o365relay", "--no-create-home", SERVICE_USER], check=True)
        return pwd.getpwnam(SERVICE_USER)


def wait_port(port, proc, what, log, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s; log:\n%s" % (what, proc.returncode, tail(log)))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("%s did not listen on %d; log:\n%s" % (what, port, tail(log)))


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


class Stack:
    def __init__(self, build_dir, name="e2e", policy="", faults=None, accounts=ACCOUNTS,
                 transport_env=None, bare_postfix=False, graph=False, graph_faults=None):
        self.build = os.path.abspath(build_dir)
        self.graph = graph
        self.env = GraphEnv(name) if graph else harness.Env(name)
        self.dir = self.env.dir
        self.milter = None
        self.postfix = None
        self.bare_postfix = bare_postfix
        try:
            if graph:
                accounts += GRAPH_ACCOUNTS
            self._start(policy, faults or [], accounts, graph_faults or [])
        except BaseException:
            self.close()
            raise

    # --- set-up -------------------------------------------------------------
    def _start(self, policy, faults, accounts, graph_faults):
        user = ensure_service_user()
        uid, gid = user.pw_uid, user.pw_gid
        os.chmod(self.dir, 0o755)
        # The transport runs as the service user: it must read the key and CA.
        os.chown(os.path.join(self.env.certs, "app.key"), uid, gid)
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir)
        for rel in ("transport/o365relay-transport", "milter/o365relay-milter",
                    "ctl/o365relayctl"):
            shutil.copy2(os.path.join(self.build, rel), bindir)
        self.transport_bin = os.path.join(bindir, "o365relay-transport")
        self.milter_bin = os.path.join(bindir, "o365relay-milter")
        self.ctl_bin = os.path.join(bindir, "o365relayctl")

        self.env.set_o365_config({}, mailboxes=MAILBOXES)
        self.set_faults(faults)
        if self.graph:
            self.env.start_entra_for_graph()  # issues Office 365 and Graph tokens
            self.env.start_graph()
            self.env.set_graph_config({}, mailboxes=GRAPH_MAILBOXES)
            self.set_graph_faults(graph_faults)
        else:
            self.env.start_entra()
        self.env.start_o365()

        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.state_dir, mode=0o700)
        os.chown(self.state_dir, uid, gid)
        self.log = os.path.join(self.dir, "o365relay.log")
        open(self.log, "a").close()
        os.chown(self.log, uid, gid)
        os.chmod(self.log, 0o644)

        self.milter_port = free_port()
        e = self.env.entra_settings()
        entra = "\n".join("%s = %s" % (k, v) for k, v in e.items())
        self.config = os.path.join(self.dir, "o365relay.conf")
        with open(self.config, "w") as f:
            f.write("""[relay]
state_dir = %s
log = file:%s
log_level = info
user = %s

[smtp]
host = localhost
port = %d
ca_file = %s
helo_name = relay.test
connect_timeout = 5
command_timeout = 10
data_timeout = 20
deadline = 60

[entra]
%s
%s
[milter]
socket = inet:%d@127.0.0.1

[policy]
null_sender_account = noreply
%s
%s
""" % (self.state_dir, self.log, SERVICE_USER, self.env.o365_port,
                os.path.join(self.env.certs, "ca.crt"), entra, self._graph_section(),
                self.milter_port, policy, accounts))
        os.chmod(self.config, 0o644)

        self.milter_out = os.path.join(self.dir, "milter.stderr")
        with open(self.milter_out, "ab") as out:
            self.milter = subprocess.Popen([self.milter_bin, "-c", self.config],
                                           stdout=out, stderr=out)
        wait_port(self.milter_port, self.milter, "o365relay-milter", self.log)

        routes = os.path.join(self.dir, "sender_transport")
        with open(routes, "w") as f:
            f.write(SENDER_ROUTES + (GRAPH_ROUTES if self.graph else ""))
        self.smtpd_port = free_port()
        if self.bare_postfix:
            self.postfix = PostfixInstance(os.path.join(self.dir, "postfix"), self.smtpd_port)
            return
        entry = ("%s unix - n n - %d pipe\n"
                 "  flags=q null_sender= user=%s argv=%s -c %s -f ${sender} -q ${queue_id}"
                 " -n ${nexthop} -- ${recipient}")
        pipe = entry % ("o365", 3, SERVICE_USER, self.transport_bin, self.config)
        main_graph = {}
        if self.graph:
            # conf/postfix-master.cf.snippet and postfix-main.cf.snippet for Graph accounts
            pipe += "\n" + entry % ("o365graph", 4, SERVICE_USER, self.transport_bin,
                                    self.config)
            main_graph = {"o365graph_destination_recipient_limit": "100",
                          "o365graph_destination_concurrency_limit": "4",
                          "o365graph_time_limit": "120s"}
        self.postfix = PostfixInstance(
            os.path.join(self.dir, "postfix"), self.smtpd_port,
            main={
                "smtpd_milters": "inet:127.0.0.1:%d" % self.milter_port,
                "non_smtpd_milters": "inet:127.0.0.1:%d" % self.milter_port,
                "milter_default_action": "tempfail",
                "milter_protocol": "6",
                "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} "
                                      "{mail_addr} {mail_host} {mail_mailer}",
                "sender_dependent_default_transport_maps": "texthash:" + routes,
                "default_transport": "o365",
                "o365_destination_concurrency_limit": "3",
                "o365_destination_recipient_limit": "1",
                "o365_time_limit": "120s",
                **main_graph,
            },
            master_extra=pipe.splitlines())
        self.postfix.start()

    def _graph_section(self):
        if not self.graph:
            return ""
        return ("\n[graph]\nendpoint = https://localhost:%d\nca_file = %s\nhttp_timeout = 20\n"
                % (self.env.graph_port, os.path.join(self.env.certs, "ca.crt")))

    # --- use ----------------------------------------------------------------
    def set_faults(self, rules):
        self.env.set_faults(rules)

    def set_graph_faults(self, rules):
        self.env.set_graph_faults(rules)

    def graph_deliveries(self):
        """The fake Graph's deliveries.jsonl entries (one per message it sent)."""
        return self.env.deliveries()

    def graph_received(self, rcpt):
        """[bytes]: every copy the recipient got through the fake Graph."""
        return self.env.received(rcpt)

    def send(self, sender, rcpts, subject="test", from_header=None, body="Hello.\n",
             extra_headers="", to_header=None):
        """Submits one message (To: the recipients, or to_header). Returns
        {"status": "queued"|"refused", "code", "text", "message_id", "stage"}."""
        mid = "<%s@test.o365relay>" % uuid.uuid4().hex
        msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n%s\r\n%s" %
               (from_header or sender or "MAILER-DAEMON", to_header or ", ".join(rcpts),
                subject, mid, extra_headers, body.replace("\n", "\r\n")))
        result = {"message_id": mid, "status": "queued", "code": 250, "text": "",
                  "stage": ""}
        c = smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=30)
        try:
            c.ehlo("client.test")
            code, text = c.mail(sender)
            if code != 250:
                return dict(result, status="refused", code=code, text=text.decode(),
                            stage="MAIL FROM")
            for r in rcpts:
                code, text = c.rcpt(r)
                if code not in (250, 251):
                    return dict(result, status="refused", code=code, text=text.decode(),
                                stage="RCPT TO")
            code, text = c.data(msg.encode())
            if code != 250:
                return dict(result, status="refused", code=code, text=text.decode(),
                            stage="end of data")
            result["text"] = text.decode()
            return result
        finally:
            try:
                c.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def delivered(self):
        """[(envelope, bytes)] of every message the fake Office 365 accepted."""
        return self.env.messages()

    def delivered_ids(self):
        """Message-ID -> number of times the fake Office 365 accepted it."""
        out = {}
        for _env, data in self.delivered():
            for line in data.split(b"\r\n"):
                if not line:
                    break
                if line.lower().startswith(b"message-id:"):
                    mid = line.split(b":", 1)[1].strip().decode()
                    out[mid] = out.get(mid, 0) + 1
        return out

    def transport_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def close(self):
        if self.postfix:
            self.postfix.stop()
        if self.milter and self.milter.poll() is None:
            self.milter.terminate()
            try:
                self.milter.wait(10)
            except subprocess.TimeoutExpired:
                self.milter.kill()
        self.env.close()
