#!/bin/sh
# Installs the Debian 12 packages that the build, the tests, the demo and the
# package build need (prometheus: its promtool checks `o365relayctl metrics`).
# Idempotent; run as root. Does nothing when all are present.
set -eu
PKGS="build-essential cmake pkg-config g++ libmilter-dev libcurl4-openssl-dev libssl-dev
libinih-dev nlohmann-json3-dev libboost-test-dev postfix miltertest swaks msmtp python3
openssl clang libclang-rt-14-dev clang-format dpkg-dev debhelper lintian fakeroot
procps adduser ca-certificates time prometheus tinyproxy"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing; run this script as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix must not be configured to run on the host: the tests use private instances.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost.localdomain" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
