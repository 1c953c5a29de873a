#!/bin/sh
# Remakes the test certificates: a self-signed CA (ca.pem) and a server
# certificate for localhost, 127.0.0.1 and ::1 signed by it (server.pem holds
# the certificate and its key).  Both are valid from 2020-01-01 (so a machine
# whose clock is behind still accepts them) for 40 years.  The CA key is not
# kept.
set -e
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/new"
touch "$tmp/index.txt"
echo 1000 > "$tmp/serial"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = ca_default
[ca_default]
dir = $tmp
database = $tmp/index.txt
new_certs_dir = $tmp/new
serial = $tmp/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
organizationName = optional
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.csr" \
    -subj "/CN=boucle test CA/O=boucle tests"
openssl ca -batch -config "$tmp/ca.cnf" -selfsign -keyfile "$tmp/ca.key" -in "$tmp/ca.csr" \
    -startdate 20200101000000Z -enddate 20600101000000Z -extensions ca_ext -notext \
    -out ca.pem
openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
    -subj "/CN=localhost/O=boucle tests"
openssl ca -batch -config "$tmp/ca.cnf" -cert ca.pem -keyfile "$tmp/ca.key" -in "$tmp/server.csr" \
    -startdate 20200101000000Z -enddate 20600101000000Z -extensions server_ext -notext \
    -out "$tmp/server.crt"
cat "$tmp/server.crt" "$tmp/server.key" > server.pem
openssl verify -CAfile ca.pem "$tmp/server.crt"
