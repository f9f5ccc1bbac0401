#!/usr/bin/env bash
# Binary sizes of the release builds (the profile strips symbols): the packaged build
# (--no-default-features: no simulator, no demo) and the default build (with `demo`).
#
# Usage: bench/size.sh
source "$(dirname "$0")/lib.sh"

build
echo "### Binary size"
echo
size_of() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }'; }
pkg=$(size_of "$BIN/kyma-certd-packaged")
def=$(size_of "$BIN/kyma-certd-default")
sim=$(size_of "$SIM")
stripped() { file -b "$1" | grep -q 'not stripped' && echo no || echo yes; }
echo "Release profile: thin LTO, codegen-units 4, panic = abort, strip = true."
echo
echo "| build | size | stripped |"
echo "|---|---:|---|"
echo "| kyma-certd, packaged (\`--no-default-features\`) | $(mib "$pkg") | $(stripped "$BIN/kyma-certd-packaged") |"
echo "| kyma-certd, default (with \`demo\`, the simulator inside) | $(mib "$def") | $(stripped "$BIN/kyma-certd-default") |"
echo "| kyma-connector-sim | $(mib "$sim") | $(stripped "$SIM") |"
