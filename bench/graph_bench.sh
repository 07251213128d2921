#!/bin/sh
# graph_bench.sh [BUILD_DIR] [-n N] [--size BYTES]
# Per-message wall and CPU time of o365relay-transport delivering by Microsoft
# Graph against delivering by SMTP, to the fakes on loopback in the same run,
# and peak RSS for the largest message Graph takes (3 MB).
# Needs: a built o365relay-transport (default build dir: ./build),
# /usr/bin/time (Debian package "time"), python3, openssl.
# Prints a Markdown report; record it in bench/RESULTS-graph.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
bin=$build/transport/o365relay-transport
[ -x "$bin" ] || { echo "graph_bench: $bin not built" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "graph_bench: /usr/bin/time missing: package time (scripts/install-deps.sh)" >&2; exit 2; }
exec python3 "$here/graph_bench.py" "$bin" "$@"
