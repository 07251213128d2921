#!/bin/sh
# The README's test command: installs what the tests need, builds, and runs every test:
#   1. format check (.clang-format)
#   2. release build + ctest (unit, fakes, transport, milter, Postfix integration)
#   3. ASan/UBSan build of the unit tests + ctest -L unit
#   4. libFuzzer smoke runs of the parser targets (tests/fuzz)
#   5. the Debian package: build, lintian, install, smoke test, purge (scripts/package-test.sh)
# Run as root on Debian 12. Exit status 0 only when everything passed.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

./scripts/install-deps.sh
./scripts/check-format.sh

echo "== build (RelWithDebInfo) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== ctest =="
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== sanitizer build (ASan+UBSan) of the unit tests =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DO365_SANITIZE=ON >/dev/null
# only what the unit tests need: their targets carry the tests' names
unit_targets=$(cd build-asan && ctest -L unit -N | sed -n 's/^ *Test *#[0-9]*: //p')
cmake --build build-asan -j"$jobs" --target $unit_targets
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j"$jobs" -L unit --timeout 300)

echo "== libFuzzer smoke runs (clang) of every parser target =="
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DO365_FUZZ=ON \
    -DCMAKE_CXX_COMPILER=clang++ >/dev/null
fuzz_targets=$(cd build-fuzz && ctest -L fuzz -N | sed -n 's/^ *Test *#[0-9]*: //p' | sed 's/_smoke$//')
cmake --build build-fuzz -j"$jobs" --target $fuzz_targets
(cd build-fuzz && ctest --output-on-failure -L fuzz --timeout 300)

if [ -x scripts/package-test.sh ]; then
    echo "== Debian package =="
    ./scripts/package-test.sh
fi
echo "== all tests passed =="
