#!/bin/sh
# transport_bench.sh [BUILD_DIR] [-n N] [--size BYTES] [--big-mb MB]
# Per-message wall and CPU time of o365relay-transport vs msmtp against the
# fake Office 365 on loopback, and the transport's peak RSS for a big message.
# Needs: a built o365relay-transport (default build dir: ./build), msmtp,
# /usr/bin/time (Debian package "time"), python3, openssl.
# Prints a Markdown report; record it in bench/RESULTS-transport.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
bin=$build/transport/o365relay-transport
[ -x "$bin" ] || { echo "transport_bench: $bin not built" >&2; exit 2; }
command -v msmtp >/dev/null || { echo "transport_bench: msmtp missing (scripts/install-deps.sh)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "transport_bench: /usr/bin/time missing: package time (scripts/install-deps.sh)" >&2; exit 2; }
exec python3 "$here/transport_bench.py" "$bin" "$@"
