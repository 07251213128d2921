#!/bin/sh
# make_test_ca.sh DIR: makes, at test time, the keys and certificates the tests need.
#   ca.crt ca.key           the test CA that clients are told to trust
#   server.crt server.key   signed by the test CA for localhost, 127.0.0.1, ::1,
#                           smtp.office365.test and login.microsoftonline.test
#   wronghost.crt/.key      signed by the test CA, but for wrong.example only
#   rogue-ca.crt rogue.crt rogue.key  a certificate for localhost from an unknown CA
#   app.crt app.key         the Entra application's certificate credential (self-signed)
#   entra-signing.key       HMAC key the fake Entra signs tokens with (fake O365 checks them)
# Idempotent: does nothing when DIR/ca.crt exists.
set -eu
dir=$1
[ -f "$dir/ca.crt" ] && exit 0
mkdir -p "$dir"
cd "$dir"
umask 077
q() { openssl "$@" 2>/dev/null; }
q req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=o365relay test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name subject san cakey cacrt
    q req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$3" > "$1.ext"
    q x509 -req -in "$1.csr" -CA "$5" -CAkey "$4" -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
}
leaf server "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1,DNS:smtp.office365.test,DNS:login.microsoftonline.test" ca.key ca.crt
leaf wronghost "/CN=wrong.example" "DNS:wrong.example" ca.key ca.crt
q req -x509 -newkey rsa:2048 -nodes -keyout rogue-ca.key -out rogue-ca.crt -days 2 -subj "/CN=rogue CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf rogue "/CN=localhost" "DNS:localhost,IP:127.0.0.1" rogue-ca.key rogue-ca.crt
q req -x509 -newkey rsa:2048 -nodes -keyout app.key -out app.crt -days 2 -subj "/CN=o365relay test app"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > entra-signing.key
chmod 644 ca.crt server.crt wronghost.crt rogue-ca.crt rogue.crt app.crt
chmod 600 *.key
