#!/usr/bin/env bash
# Runs every packaging check that needs no built binary and no root: the
# systemd unit, the alert rules, the dashboard and the Kubernetes example.
# The Debian package has its own: packaging/deb/build.sh, then
# packaging/deb/check.sh on the .deb (as root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

for check in systemd/check.sh packaging/prometheus/check.sh \
    packaging/grafana/check.sh packaging/kubernetes/check.sh; do
    echo "### $check"
    "$check"
done
echo "### all packaging checks passed"
