#!/bin/sh
# Warm-cache token lookup cost with 10 and with 10,000 accounts.
#
#   bench/token_lookup.sh [TOKEN_LOOKUP_BINARY] [ITERATIONS]
#
# Without a binary, builds bench/token_lookup in Release mode into build-bench/
# (make -j2). Generates one config per size in a temporary directory (state_dir
# on $TMPDIR or /tmp), warms the cache (one token file per account; not
# measured), then runs the measured lookups (find account by name +
# TokenCache::get) twice per size: the second run starts from a cache that a
# previous process left, as the transport does. Prints one line per run.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
bin=${1:-}
iterations=${2:-200000}

if [ -z "$bin" ]; then
    # -Wno-error=restrict: g++ 12 at -O2 reports a false -Wrestrict (GCC bug
    # 105329) on `"@" + std::string` in common/config/accounts.cpp; it stays a warning.
    cmake -S "$top" -B "$top/build-bench" -DCMAKE_BUILD_TYPE=Release -DO365_TESTS=OFF \
        -DCMAKE_CXX_FLAGS=-Wno-error=restrict >/dev/null
    make -C "$top/build-bench" -j2 token_lookup >/dev/null
    bin=$top/build-bench/bench/token_lookup
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/o365-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

printf 'client-secret-for-bench\n' >"$tmp/secret"
chmod 600 "$tmp/secret"

gen_config() { # N FILE
    {
        printf '[relay]\nstate_dir = %s/state-%s\nlog = stderr\n' "$tmp" "$1"
        printf '[entra]\ntenant = contoso.onmicrosoft.com\n'
        printf 'client_id = 00000000-0000-0000-0000-000000000001\n'
        printf 'client_secret_file = %s/secret\n' "$tmp"
        awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++)
            printf "[account acct%05d]\nmailbox = acct%05d@contoso.com\n", i, i }'
    } >"$2"
}

echo "host: $(uname -srm), $(nproc) cpu(s); state dir on $(df -PT "$tmp" | awk 'NR==2 {print $2}')"
echo "binary: $bin; iterations per run: $iterations"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in 10 10000; do
    gen_config "$n" "$tmp/o365relay-$n.conf"
    for run in 1 2; do
        printf 'run %s: ' "$run"
        "$bin" "$tmp/o365relay-$n.conf" "$iterations" "$run"
    done
    echo "load after $n accounts: $(cut -d' ' -f1-3 /proc/loadavg)"
done
