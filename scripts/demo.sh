#!/bin/sh
# The README's first command: installs what it needs, builds, and runs the demo
# (tests/integration/demo.py): a private Postfix instance with o365relay-milter
# and o365relay-transport wired in as conf/ recommends, and fakes of Office 365,
# Microsoft Graph and Entra ID on loopback (two accounts deliver by SMTP, one by
# Graph); a handful of messages, what happened to each and where to look. Leaves nothing running. Run as root on Debian 12.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (Postfix's master and pipe(8) user= need it)" >&2
    exit 1
fi
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target o365relay-transport o365relay-milter o365relayctl
exec python3 tests/integration/demo.py build
