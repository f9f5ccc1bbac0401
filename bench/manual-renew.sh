#!/usr/bin/env bash
# One renewal the manual way, as the Compass tutorials and docs/manual-way.md do it with
# openssl, curl, base64 and jq: ask the certificate-secured connector for the subject,
# make a key and a CSR, send it over mutual TLS with the current certificate, decode and
# verify the answer, then put the new key and certificate in place.
#
# Usage: manual-renew.sh DIR SERVER_CA MTLS_URL rsa2048|rsa4096|ecdsa-p256
# DIR holds client.crt and client.key (the current pair); they are replaced on success.
set -euo pipefail

dir=$1 ca=$2 url=$3 alg=$4
cd "$dir"

# 1. The subject the connector wants, over mTLS.
curl -sS --fail --cacert "$ca" --cert client.crt --key client.key -H 'Content-Type: application/json' \
  -d '{"query":"{ result: configuration { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { certificateSecuredConnectorURL } } }"}' \
  "$url" >config.json
subject=$(jq -r .data.result.certificateSigningRequestInfo.subject config.json)

# 2. A new key and a CSR with exactly that subject.
case $alg in
  rsa2048) openssl genrsa -out renewed.key 2048 2>/dev/null ;;
  rsa4096) openssl genrsa -out renewed.key 4096 2>/dev/null ;;
  ecdsa-p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out renewed.key ;;
  *) echo "unknown key type $alg" >&2; exit 2 ;;
esac
openssl req -new -sha256 -key renewed.key -out renewed.csr -subj "/$(echo "$subject" | tr ',' '/')"
csr=$(base64 -w0 renewed.csr)

# 3. Sign it over mTLS with the current certificate.
curl -sS --fail --cacert "$ca" --cert client.crt --key client.key -H 'Content-Type: application/json' \
  -d "{\"query\":\"mutation { result: signCertificateSigningRequest(csr: \\\"$csr\\\") { certificateChain caCertificate clientCertificate } }\"}" \
  "$url" >renewed.json
if [[ $(jq -r '.errors // empty' renewed.json) != "" ]]; then
  echo "the connector answered with errors" >&2
  exit 1
fi
jq -r .data.result.clientCertificate renewed.json | base64 -d >renewed.crt
jq -r .data.result.caCertificate renewed.json | base64 -d >ca.crt
openssl verify -CAfile ca.crt renewed.crt >/dev/null

# 4. Swap: the new pair replaces the old one.
mv renewed.key client.key
mv renewed.crt client.crt
rm -f renewed.csr renewed.json config.json
