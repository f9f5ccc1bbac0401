#!/usr/bin/env bash
# Every test, on a Debian machine that has only the Rust toolchain: installs what the
# tests need (tests/setup.sh; sudo when not root), then runs the workspace tests, the
# crash-consistency suite, the Debian package check, the booted-systemd test and the
# container test, and the Kubernetes manifests under podman kube play. The README's
# test command; .ci/run runs it too.
#
# Usage: tests/all.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/host/lib.sh

step() { printf '\n==> %s [%ss]\n' "$*" "$SECONDS" >&2; }

step "install what the tests need"
tests/setup.sh

# The booted-systemd test's Debian tree downloads while the tests compile and run.
mkdir -p "$CACHE"
tests/host/debian-tree.sh >"$CACHE/tree.log" 2>&1 &
tree_job=$!

step "tests (cargo test --workspace)"
cargo test --workspace

step "key material scanner: finds a key in a process that holds it, none in one that does not"
python3 bench/keyscan.py --self-test

step "crash consistency: SIGKILL at random moments, 200 kills per layout"
cargo test --test reliability_crash -- --ignored

step "Debian package: build without the simulator, install, check, remove"
deb=$(packaging/deb/build.sh | tail -n 1)
as_root packaging/deb/check.sh "$deb"

step "booted systemd: the package in Debian 12 under systemd-nspawn"
wait "$tree_job" || die "the Debian tree could not be made: $(cat "$CACHE/tree.log")"
started=$SECONDS
tests/host/systemd.sh "$deb"
systemd_seconds=$((SECONDS - started))

step "container: the sidecar image under podman"
started=$SECONDS
# One image for both tests.
podman_cmd=podman
[ "$(id -u)" -eq 0 ] || podman_cmd="sudo podman"
image=$(PODMAN=$podman_cmd packaging/container/build.sh | tail -n 1)
tests/host/container.sh "$image"
container_seconds=$((SECONDS - started))

step "Kubernetes: packaging/kubernetes/ under podman kube play"
started=$SECONDS
tests/host/kube.sh "$image"
kube_seconds=$((SECONDS - started))

step "all tests passed (booted systemd ${systemd_seconds}s, container ${container_seconds}s, Kubernetes ${kube_seconds}s)"
