#!/bin/sh
# smoke-test.sh SBIN_DIR: quick checks of the three o365relay binaries in
# SBIN_DIR (the package build tree, or /usr/sbin after installation).
#   - o365relay-milter --check-config accepts a minimal valid configuration
#     (one client-secret account) and refuses a broken one with exit 78;
#   - o365relayctl --help exits 0 and prints a usage text;
#   - o365relay-transport exists and is executable.
# No network, no Postfix, no root needed. Exit 0 when all pass.
set -eu

SBIN=${1:?usage: smoke-test.sh SBIN_DIR}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/o365relay-smoke.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
fail() { echo "smoke-test: FAIL: $*" >&2; exit 1; }

for b in o365relay-milter o365relay-transport o365relayctl; do
    [ -x "$SBIN/$b" ] || fail "$SBIN/$b is missing or not executable"
done

# Service user named in the config: o365relay when it exists (installed),
# else the calling user, but never root.
if getent passwd o365relay >/dev/null; then
    svc=o365relay
elif [ "$(id -u)" != 0 ]; then
    svc=$(id -un)
else
    svc=nobody
fi

mkdir -m 0700 "$TMP/state"
printf 'not-a-real-secret\n' > "$TMP/client.secret"
chmod 0600 "$TMP/client.secret"
cat > "$TMP/good.conf" <<CONF
[relay]
state_dir = $TMP/state
log = stderr
user = $svc

[entra]
tenant = contoso.onmicrosoft.com
client_id = 00000000-0000-0000-0000-000000000000
client_secret_file = $TMP/client.secret

[account noreply]
mailbox = noreply@contoso.com
senders = noreply@contoso.com, @apps.contoso.com

[milter]
socket = unix:$TMP/milter.sock
CONF
sed 's/^mailbox = .*/mailbox = not an address/' "$TMP/good.conf" > "$TMP/bad.conf"

if ! "$SBIN/o365relay-milter" --check-config -c "$TMP/good.conf" >"$TMP/out" 2>&1; then
    cat "$TMP/out" >&2
    fail "o365relay-milter --check-config refused a valid configuration"
fi
rc=0
"$SBIN/o365relay-milter" --check-config -c "$TMP/bad.conf" >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 78 ] || { cat "$TMP/out" >&2; fail "--check-config of a broken file: exit $rc, expected 78"; }
grep -q 'bad.conf:[0-9]' "$TMP/out" || { cat "$TMP/out" >&2; fail "--check-config does not name file and line"; }

rc=0
"$SBIN/o365relayctl" --help >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$TMP/out" >&2; fail "o365relayctl --help: exit $rc"; }
grep -qi 'usage' "$TMP/out" || fail "o365relayctl --help prints no usage text"

echo "smoke-test: OK ($SBIN)"
