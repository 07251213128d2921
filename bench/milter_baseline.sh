#!/bin/sh
# bench/milter_baseline.sh: the same measurement as milter_bench.sh, with
# bench/null_milter (libmilter, the same callbacks and protocol steps, no
# policy) in place of o365relay-milter: the floor that any libmilter-based
# milter costs Postfix on this machine. Needs root and a build with bench/.
#   bench/milter_baseline.sh [BUILD_DIR] [MESSAGES] [SESSIONS] [SIZE] [ROUNDS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
shift 2>/dev/null || true
exec python3 "$here/milter_bench.py" "$build/bench/null_milter" "$@"
