#!/bin/sh
# Fails when a C++ file differs from what .clang-format would make of it.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find common milter transport ctl tests bench -name '*.[ch]pp')
[ -z "$files" ] && exit 0
clang-format --dry-run --Werror $files
echo "check-format: $(echo "$files" | wc -l) files formatted"
