"""postfix_instance: a private Postfix instance for tests and the demo
(`postfix -c DIR`, loopback only; the system's Postfix in /etc/postfix is never
touched, and no /etc/postfix/main.cf is needed).

Contract: PostfixInstance(root, smtpd_port, main={...}, master_extra=[...])
writes DIR/conf/main.cf and master.cf (the Debian master.cf with smtpd moved to
127.0.0.1:<smtpd_port>, no chroot), a queue directory and a data directory
owned by postfix, and maillog_file = DIR/maillog through postlogd (this machine
has no syslog daemon). start()/stop() run `postfix -c`; queue() parses
`postqueue -j`; flush() runs `postqueue -f`; wait_for(pred) polls. stop() is
idempotent and also kills a master left over by an earlier run of the same DIR.
Needs root (Postfix's master runs as root and drops to mail_owner). Not
thread-safe.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

POSTFIX_MASTER_CF = "/etc/postfix/master.cf"


def _run(argv, check=True):
    # postfix(1) writes its diagnostics only to syslog unless stdin is a tty;
    # maillog_file carries them for us once postlogd runs.
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stdout))
    return r


class PostfixInstance:
    def __init__(self, root, smtpd_port, main=None, master_extra=None, hostname="relay.test"):
        self.root = os.path.abspath(root)
        self.conf = os.path.join(self.root, "conf")
        self.queue_dir = os.path.join(self.root, "queue")
        self.data_dir = os.path.join(self.root, "data")
        self.maillog = os.path.join(self.root, "maillog")
        self.port = smtpd_port
        for d in (self.conf, self.queue_dir, self.data_dir):
            os.makedirs(d, exist_ok=True)
        pf = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pf.pw_uid, pf.pw_gid)
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": hostname,
            "mydomain": "relay.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": os.path.dirname(self.root) + ", /var, /tmp",
            "smtpd_banner": "$myhostname ESMTP",
            "biff": "no",
            "append_dot_mydomain": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtputf8_enable": "yes",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "delay_warning_time": "0",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        }
        settings.update(main or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        with open(POSTFIX_MASTER_CF) as f:
            master = f.read().splitlines()
        out = []
        for line in master:
            fields = line.split()
            if fields and fields[0] == "smtp" and len(fields) > 1 and fields[1] == "inet":
                line = "127.0.0.1:%d inet n - n - - smtpd" % smtpd_port
            elif fields and not line.startswith((" ", "\t", "#")) and len(fields) >= 8:
                # no chroot anywhere: the private queue has no chroot files
                fields[4] = "n"
                line = " ".join(fields)
            out.append(line)
        out.extend(master_extra or [])
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")

    def postfix(self, *args, check=True):
        return _run(["postfix", "-c", self.conf] + list(args), check=check)

    def postconf(self, *args):
        return _run(["postconf", "-c", self.conf] + list(args)).stdout

    def start(self):
        self.stop()
        self.postfix("check")
        r = self.postfix("start", check=False)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s\n%s" % (r.stdout, self.log_tail()))
        deadline = time.time() + 20
        while time.time() < deadline:
            if "daemon started" in self.log_text():
                return
            time.sleep(0.1)
        raise RuntimeError("postfix did not start:\n" + self.log_tail())

    def master_pid(self):
        try:
            with open(os.path.join(self.data_dir, "master.lock")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.postfix("status", check=False).returncode == 0:
            self.postfix("stop", check=False)
        pid = self.master_pid()
        deadline = time.time() + 10
        while pid and time.time() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass

    def queue(self):
        """The messages in the queue, as postqueue -j gives them."""
        r = _run(["postqueue", "-c", self.conf, "-j"], check=False)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip().startswith("{")]

    def flush(self):
        _run(["postqueue", "-c", self.conf, "-f"], check=False)

    def log_text(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_for(self, pred, timeout=60.0, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return
            time.sleep(0.2)
        raise AssertionError("timed out waiting for %s; maillog tail:\n%s" % (what, self.log_tail()))

    def remove(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


DELIVER_SH = """#!/bin/sh
# pipe(8) transport of the test instance: the message, with the envelope first.
out="$1"; shift
f="$out/msg.$$.$(date +%s%N)"
{ printf 'X-Test-Envelope-Sender: %s\\n' "$1"; shift; printf 'X-Test-Envelope-Recipient: %s\\n' "$@"; cat; } > "$f.tmp" && mv "$f.tmp" "$f"
"""


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Postfix(PostfixInstance):
    """A private instance for the milter's tests and benchmark: smtpd with the
    milter (milter_sock in Postfix syntax, None: none) and a default transport
    that is either `discard` or `filedump` (a pipe(8) service that writes each
    message, envelope first, into DIR/out, read back by delivered())."""

    def __init__(self, dir, milter_sock=None, transport="filedump"):
        self.out = os.path.join(dir, "out")
        os.makedirs(self.out, exist_ok=True)
        os.chmod(dir, 0o755)  # the pipe user (nobody) runs deliver.sh below it
        os.chmod(self.out, 0o1777)
        deliver = os.path.join(dir, "deliver.sh")
        with open(deliver, "w") as f:
            f.write(DELIVER_SH)
        os.chmod(deliver, 0o755)
        main = {"default_transport": transport, "smtpd_relay_restrictions":
                "permit_mynetworks, reject", "smtpd_client_connection_rate_limit": "0",
                "smtpd_client_message_rate_limit": "0", "default_process_limit": "100",
                "smtputf8_enable": "no", "queue_run_delay": "300s",
                "minimal_backoff_time": "300s", "maximal_backoff_time": "4000s"}
        if milter_sock:
            main.update({"smtpd_milters": milter_sock, "non_smtpd_milters": milter_sock,
                         "milter_default_action": "tempfail",
                         "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} "
                                               "{mail_addr} {mail_host} {mail_mailer}"})
        filedump = ["filedump  unix  -       n       n       -       -       pipe",
                    "  flags=q user=nobody argv=%s %s ${sender} ${recipient}" % (deliver,
                                                                               self.out)]
        super().__init__(dir, _free_port(), main=main, master_extra=filedump)
        self.etc = self.conf

    def log(self):
        return self.log_text()

    def delivered(self):
        """The messages delivered by the filedump transport, as text."""
        out = []
        for n in sorted(os.listdir(self.out)):
            if n.endswith(".tmp"):
                continue
            with open(os.path.join(self.out, n), errors="replace") as f:
                out.append(f.read())
        return out

    def wait_delivered(self, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = self.delivered()
            if len(d) >= count:
                return d
            time.sleep(0.1)
        raise AssertionError("expected %d delivered messages, got %d\n%s" % (
            count, len(self.delivered()), self.log_text()[-3000:]))
