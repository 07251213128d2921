"""A private Postfix instance for tests and benchmarks: `postfix -c DIR/etc`.

Never touches the system's Postfix (/etc/postfix): everything lives under one
temporary directory:
  DIR/etc/main.cf, master.cf   the instance's configuration (config_directory)
  DIR/queue                    queue_directory (created by `postfix -c DIR/etc check`)
  DIR/data                     data_directory (owned by mail_owner postfix)
  DIR/out                      where the pipe transport `filedump` writes messages
  DIR/maillog                  Postfix's log (maillog_file via postlogd, Postfix >= 3.4)

What works on Debian 12 (Postfix 3.7), found by trying: as root, `postfix -c DIR
check|start|stop` accepts a non-default config directory without listing it in
alternate_config_directories of /etc/postfix/main.cf (that list is needed only by
the set-gid commands postdrop/postqueue run by other users), and it works even
when /etc/postfix/main.cf does not exist. `postfix check` creates the queue
directories. maillog_file needs the postlog service in master.cf and its path
must start with one of maillog_file_prefixes. smtpd listens on 127.0.0.1:PORT
only; every service runs unchrooted (so the test paths need no copy in a chroot).
sendmail(1) submissions use `sendmail -C DIR/etc` (root).
"""
import os
import shutil
import socket
import subprocess
import time

MASTER_CF = """\
127.0.0.1:{smtpd_port} inet n - n - {smtpd_procs} smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
filedump  unix  -       n       n       -       -       pipe
  flags=q user=nobody argv={dir}/deliver.sh {dir}/out ${{sender}} ${{recipient}}
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = {transport}
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
alias_maps =
alias_database =
biff = no
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 100
{milters}
"""

DELIVER_SH = """#!/bin/sh
# pipe(8) transport of the test instance: the message, with the envelope first.
out="$1"; shift
f="$out/msg.$$.$(date +%s%N)"
{ printf 'X-Test-Envelope-Sender: %s\\n' "$1"; shift; printf 'X-Test-Envelope-Recipient: %s\\n' "$@"; cat; } > "$f.tmp" && mv "$f.tmp" "$f"
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Postfix:
    def __init__(self, dir, milter_sock=None, transport="filedump", smtpd_procs=100,
                 extra_main=""):
        """milter_sock: Postfix syntax, e.g. inet:127.0.0.1:PORT (None: no milter)."""
        self.dir = dir
        self.etc = os.path.join(dir, "etc")
        self.out = os.path.join(dir, "out")
        self.port = free_port()
        os.makedirs(dir, exist_ok=True)
        os.chmod(dir, 0o755)  # the pipe user (nobody) runs deliver.sh below it
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(dir, d), exist_ok=True)
        os.makedirs(self.out, exist_ok=True)
        os.chmod(self.out, 0o1777)
        shutil.chown(os.path.join(dir, "data"), "postfix")
        milters = ""
        if milter_sock:
            milters = ("smtpd_milters = %s\nnon_smtpd_milters = %s\n"
                       "milter_default_action = tempfail\n"
                       "milter_mail_macros = i {auth_type} {auth_authen} {auth_author} "
                       "{mail_addr} {mail_host} {mail_mailer}\n" % (milter_sock, milter_sock))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=dir, transport=transport, milters=milters) + extra_main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(dir=dir, smtpd_port=self.port, smtpd_procs=smtpd_procs))
        path = os.path.join(dir, "deliver.sh")
        with open(path, "w") as f:
            f.write(DELIVER_SH)
        os.chmod(path, 0o755)

    def postfix(self, *args):
        return subprocess.run(["postfix", "-c", self.etc] + list(args),
                              capture_output=True, text=True)

    def start(self, timeout=20):
        p = self.postfix("check")
        if p.returncode != 0:
            raise RuntimeError("postfix check failed: %s%s\n%s" % (p.stdout, p.stderr, self.log()))
        p = self.postfix("start")
        if p.returncode != 0:
            raise RuntimeError("postfix start failed: %s%s\n%s" % (p.stdout, p.stderr, self.log()))
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix smtpd not listening on %d\n%s" % (self.port, self.log()))

    def stop(self):
        self.postfix("stop")
        # master exits asynchronously; wait for its pid file to go away
        pid = os.path.join(self.dir, "queue", "pid", "master.pid")
        for _ in range(100):
            if not os.path.exists(pid):
                break
            time.sleep(0.1)

    def log(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

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
            count, len(self.delivered()), self.log()[-3000:]))
