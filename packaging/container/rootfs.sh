#!/bin/sh
# Lays out the container image's file system in OUT, in two trees: OUT/root (owned by
# root in the image: the daemon at /kyma-certd, the system CA bundle, /etc/kyma-certd,
# an empty /var/lib) and OUT/state (what goes into /var/lib, owned by the image's user:
# kyma-certd/, mode 0750). Both recipes use it (the Containerfile's build stage and
# build.sh on the host), so both images hold the same files. Owners are set by the
# runtime stage's COPY lines, not here.
#
# Usage: packaging/container/rootfs.sh OUT BINARY CA_BUNDLE
set -eu

if [ $# -ne 3 ]; then
    echo "usage: packaging/container/rootfs.sh OUT BINARY CA_BUNDLE" >&2
    exit 2
fi
out=$1 binary=$2 bundle=$3
for f in "$binary" "$bundle"; do
    [ -s "$f" ] || { echo "rootfs.sh: $f is missing or empty" >&2; exit 1; }
done

install -D -m 0755 "$binary" "$out/root/kyma-certd"
# System roots, for connectors whose server_ca_file is not set.
install -D -m 0644 "$bundle" "$out/root/etc/ssl/certs/ca-certificates.crt"
install -d -m 0755 "$out/root/etc/kyma-certd" "$out/root/var/lib"
install -d -m 0750 "$out/state/kyma-certd"
