#!/bin/sh
# bench/milter_bench.sh: Postfix smtpd throughput with and without
# o365relay-milter (smtp-source into a private Postfix instance with the discard
# transport). Needs root, the postfix package and a built milter.
#   bench/milter_bench.sh [BUILD_DIR] [MESSAGES] [SESSIONS] [SIZE] [ROUNDS]
# Results are recorded in bench/RESULTS-milter.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
shift 2>/dev/null || true
exec python3 "$here/milter_bench.py" "$build/milter/o365relay-milter" "$@"
