#!/bin/sh
# package-test.sh: builds the o365relay Debian package from this tree, checks
# it with lintian, installs it on this machine, checks what the installation
# did, runs the installed binaries, then purges it and checks that its state is
# gone. Part of CI.
#
#   scripts/package-test.sh [--keep]
#
# Needs root (it installs and purges the package) and the build dependencies
# (scripts/install-deps.sh). Builds in a temporary copy of the tree, so no
# file lands in the source tree or its parent; --keep (or OUT_DIR=DIR) copies
# the .deb/.changes/.buildinfo files to OUT_DIR (default ./package-out).
# Refuses to run when o365relay is already installed (a real installation is
# never touched), unless O365_PACKAGE_TEST_FORCE=1.
#
# Exit 0 when every check passed; 1 with "FAIL: ..." otherwise.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
KEEP=no
[ "${1:-}" = "--keep" ] && KEEP=yes
[ -n "${OUT_DIR:-}" ] && KEEP=yes
OUT_DIR=${OUT_DIR:-$PWD/package-out}
PARALLEL=${PARALLEL:-2}

say() { echo "package-test: $*"; }
fail() { echo "package-test: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (installs and purges the package)"
if dpkg-query -W -f='${Status}' o365relay 2>/dev/null | grep -q 'installed\|config-files'; then
    [ "${O365_PACKAGE_TEST_FORCE:-0}" = 1 ] ||
        fail "o365relay is already installed here; set O365_PACKAGE_TEST_FORCE=1 to replace and purge it"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/o365relay-pkg.XXXXXX")
INSTALLED=no
cleanup() {
    rc=$?
    if [ "$INSTALLED" = yes ]; then
        say "purging after failure"
        apt-get purge -y -q o365relay >/dev/null 2>&1 || dpkg --purge o365relay >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- 1. build in a copy -------------------------------------------------------
say "copying the tree to $WORK/src"
mkdir "$WORK/src"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and new files, without ignored ones (build dirs, debian/o365relay).
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
else
    (cd "$REPO" && tar --exclude='./build*' --exclude='./obj-*' --exclude=./debian/o365relay \
        --exclude=./debian/.debhelper -cf - .) | tar -xf - -C "$WORK/src"
fi

say "building (dpkg-buildpackage -us -uc -b, parallel=$PARALLEL)"
if ! (cd "$WORK/src" && DEB_BUILD_OPTIONS="parallel=$PARALLEL ${DEB_BUILD_OPTIONS:-}" \
        dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
    tail -n 60 "$WORK/build.log" >&2
    fail "dpkg-buildpackage failed (last lines above)"
fi
grep 'smoke-test:' "$WORK/build.log" || true
CHANGES=$(ls "$WORK"/o365relay_*.changes)
DEB=$(ls "$WORK"/o365relay_*_*.deb)
say "built $(basename "$DEB")"

# --- 2. lintian -------------------------------------------------------------------
say "lintian"
lintian_rc=0
lintian --pedantic --display-info --tag-display-limit 0 --fail-on error "$CHANGES" \
    >"$WORK/lintian.log" 2>&1 || lintian_rc=$?
cat "$WORK/lintian.log"
say "lintian summary: $(grep -c '^E:' "$WORK/lintian.log" || true) errors," \
    "$(grep -c '^W:' "$WORK/lintian.log" || true) warnings," \
    "$(grep -c '^[IP]:' "$WORK/lintian.log" || true) info/pedantic"
[ "$lintian_rc" = 0 ] || fail "lintian reported errors (exit $lintian_rc)"

if [ "$KEEP" = yes ]; then
    mkdir -p "$OUT_DIR"
    cp "$WORK"/*.deb "$WORK"/*.changes "$WORK"/*.buildinfo "$OUT_DIR"/
    say "packages copied to $OUT_DIR"
fi

# --- 3. install and check -----------------------------------------------------
say "installing $(basename "$DEB")"
INSTALLED=yes
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$DEB" \
    >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; fail "installation failed"; }

# expect_stat PATH "MODE OWNER GROUP" (MODE as stat %a: no leading 0)
expect_stat() {
    [ -e "$1" ] || fail "$1 does not exist"
    got=$(stat -c '%a %U %G' "$1")
    [ "$got" = "$2" ] || fail "$1 is '$got', expected '$2'"
    say "ok: $1 $got"
}

getent passwd o365relay >/dev/null || fail "user o365relay was not created"
getent group o365relay >/dev/null || fail "group o365relay was not created"
home=$(getent passwd o365relay | cut -d: -f6)
[ "$home" = /var/lib/o365relay ] || fail "o365relay's home is $home"
uid=$(id -u o365relay)
[ "$uid" -lt 1000 ] || fail "o365relay is not a system user (uid $uid)"
say "ok: system user o365relay (uid $uid)"

expect_stat /var/lib/o365relay "700 o365relay o365relay"
expect_stat /var/spool/postfix/o365relay "2750 o365relay postfix"
expect_stat /etc/o365relay "750 root o365relay"
expect_stat /etc/o365relay/o365relay.conf "640 root o365relay"
grep -qx /etc/o365relay/o365relay.conf /var/lib/dpkg/info/o365relay.conffiles ||
    fail "/etc/o365relay/o365relay.conf is not a conffile"
for b in o365relay-milter o365relay-transport o365relayctl; do
    [ -x /usr/sbin/$b ] || fail "/usr/sbin/$b missing"
done
for m in man8/o365relay-milter.8 man8/o365relay-transport.8 man8/o365relayctl.8 man5/o365relay.conf.5; do
    [ -f /usr/share/man/$m.gz ] || fail "manual page $m missing"
done
UNIT=/lib/systemd/system/o365relay-milter.service
[ -f "$UNIT" ] || fail "$UNIT missing"
if [ -e /etc/systemd/system/multi-user.target.wants/o365relay-milter.service ]; then
    fail "the milter unit was enabled on installation (it must wait for a configuration)"
fi
say "ok: binaries, manual pages, unit installed and not enabled"

if command -v systemd-analyze >/dev/null 2>&1; then
    # Verified as installed, so that the binaries and manual pages it names exist.
    systemd-analyze verify "$UNIT" >"$WORK/verify.log" 2>&1 || {
        cat "$WORK/verify.log" >&2
        fail "systemd-analyze verify $UNIT"
    }
    [ -s "$WORK/verify.log" ] && { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify printed warnings"; }
    say "ok: systemd-analyze verify"
else
    say "skip: systemd-analyze not available"
fi

# Reinstalling (postinst configure with a previous version, statoverrides
# already registered, state directories present) keeps the same result.
dpkg -i "$DEB" >"$WORK/reinstall.log" 2>&1 || { cat "$WORK/reinstall.log" >&2; fail "reinstallation failed"; }
expect_stat /var/lib/o365relay "700 o365relay o365relay"
expect_stat /var/spool/postfix/o365relay "2750 o365relay postfix"
expect_stat /etc/o365relay/o365relay.conf "640 root o365relay"
say "ok: reinstallation keeps users, owners and modes"

# The socket directory really works: a socket that o365relay makes there with
# mode 0660 gets group postfix (set-group-id directory), and the postfix user
# (as smtpd and cleanup run) can connect to it while an unrelated user cannot.
SOCK=/var/spool/postfix/o365relay/package-test.sock
rm -f "$SOCK"
runuser -u o365relay -- python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o660); s.listen(4)
s.settimeout(20)
for _ in range(2):
    try:
        c, _ = s.accept(); c.close()
    except socket.timeout:
        break
' "$SOCK" 2>/dev/null &
listener=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -S "$SOCK" ] || fail "o365relay cannot create a socket in /var/spool/postfix/o365relay"
sgrp=$(stat -c %G "$SOCK")
[ "$sgrp" = postfix ] || fail "socket made by o365relay has group $sgrp, expected postfix"
connect='import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])'
runuser -u postfix -- python3 -c "$connect" "$SOCK" ||
    fail "user postfix cannot connect to a socket in /var/spool/postfix/o365relay"
if runuser -u nobody -- python3 -c "$connect" "$SOCK" 2>/dev/null; then
    fail "user nobody can connect to the milter socket directory"
fi
kill "$listener" 2>/dev/null || true
wait "$listener" 2>/dev/null || true
rm -f "$SOCK"
say "ok: socket made by o365relay has group postfix; postfix can connect, nobody cannot"

# The installed binaries, from their installed paths.
sh "$WORK/src/debian/smoke-test.sh" /usr/sbin || fail "smoke test of the installed binaries"
# The shipped configuration has no account yet: --check-config must say exactly
# that (exit 78, "relays nothing"), and nothing else may be wrong with it.
rc=0
/usr/sbin/o365relay-milter --check-config -c /etc/o365relay/o365relay.conf >"$WORK/check.log" 2>&1 || rc=$?
if [ "$rc" != 78 ] || ! grep -q 'no \[account NAME\] section' "$WORK/check.log" ||
    [ "$(grep -c . "$WORK/check.log")" != 1 ]; then
    cat "$WORK/check.log" >&2
    fail "--check-config of the shipped /etc/o365relay/o365relay.conf: exit $rc, expected 78 naming only the missing account"
fi
/usr/sbin/o365relayctl --help >/dev/null || fail "/usr/sbin/o365relayctl --help"
say "ok: installed binaries run (--check-config, --help); the shipped configuration lacks only an account"

# The installed milter itself, as the systemd unit runs it (user o365relay):
# it creates its socket in the package's directory with group postfix and
# mode 0660, Postfix's user can connect, and SIGTERM stops it cleanly and
# removes the socket. Entra ID is pointed at a closed loopback port, so the
# background refresher fails fast and nothing leaves the machine.
MT=$WORK/milter-run
chmod 0711 "$WORK"    # the service user must reach $MT; $WORK stays unlistable
mkdir -m 0700 "$MT"
printf 'not-a-real-secret\n' > "$MT/client.secret"
chmod 0600 "$MT/client.secret"
cat > "$MT/milter.conf" <<CONF
[relay]
state_dir = $MT/state
log = file:$MT/milter.log
log_level = debug

[entra]
authority = https://127.0.0.1:9
tenant = contoso.onmicrosoft.com
client_id = 00000000-0000-0000-0000-000000000000
client_secret_file = $MT/client.secret

[account noreply]
mailbox = noreply@contoso.com

[milter]
socket = unix:/var/spool/postfix/o365relay/milter.sock
CONF
mkdir -m 0700 "$MT/state"
chown -R o365relay:o365relay "$MT"
chmod 0644 "$MT/milter.conf"
MSOCK=/var/spool/postfix/o365relay/milter.sock
setpriv --reuid=o365relay --regid=o365relay --init-groups \
    /usr/sbin/o365relay-milter -c "$MT/milter.conf" >"$MT/milter.out" 2>&1 &
milter=$!
i=0
while [ ! -S "$MSOCK" ] && [ $i -lt 100 ] && kill -0 "$milter" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if [ ! -S "$MSOCK" ]; then
    kill "$milter" 2>/dev/null || true
    cat "$MT/milter.out" "$MT/milter.log" >&2 2>/dev/null || true
    fail "the installed milter did not create $MSOCK"
fi
got=$(stat -c '%a %U %G' "$MSOCK")
[ "$got" = "660 o365relay postfix" ] || { kill "$milter"; fail "milter socket is '$got', expected '660 o365relay postfix'"; }
runuser -u postfix -- python3 -c "$connect" "$MSOCK" || { kill "$milter"; fail "user postfix cannot connect to the milter"; }
kill -TERM "$milter"
rc=0
wait "$milter" || rc=$?
[ "$rc" = 0 ] || { cat "$MT/milter.out" "$MT/milter.log" >&2 2>/dev/null || true; fail "milter exit status $rc after SIGTERM"; }
[ ! -e "$MSOCK" ] || fail "milter left $MSOCK behind after SIGTERM"
say "ok: installed milter runs as o365relay; socket $got; postfix can connect; SIGTERM stops it (exit 0)"

# --- 4. purge and check ---------------------------------------------------------
say "purging"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q o365relay >"$WORK/purge.log" 2>&1 ||
    { cat "$WORK/purge.log" >&2; fail "purge failed"; }
INSTALLED=no
dpkg-query -W -f='${Status}' o365relay 2>/dev/null | grep -q 'installed\|config-files' &&
    fail "o365relay is still known to dpkg after purge"
for p in /var/lib/o365relay /var/spool/postfix/o365relay /etc/o365relay \
         /usr/sbin/o365relay-milter "$UNIT"; do
    [ ! -e "$p" ] || fail "$p remains after purge"
done
for p in /etc/o365relay /etc/o365relay/o365relay.conf; do
    dpkg-statoverride --list "$p" >/dev/null 2>&1 && fail "statoverride for $p remains after purge"
done
say "ok: purge removed state, socket directory, configuration and statoverrides"
getent passwd o365relay >/dev/null &&
    say "note: user o365relay is kept after purge (Debian practice for system users)"

say "PASS"
