#!/usr/bin/env bash
# The container test: runs the sidecar image the way packaging/kubernetes/ does, read-only,
# as uid 65532, with every capability dropped and no-new-privileges. First the init
# container (`enroll --if-needed`, twice: the second must not use the token), then the
# sidecar against the connector simulator on the host's loopback. Checks a renewal on the
# shared volume, the key's mode and owner, /readyz, and exit 0 on SIGTERM.
#
# Needs root (or sudo), podman and runc, musl-tools, curl.
# Usage: tests/host/container.sh [IMAGE]   (default: build it with packaging/container/build.sh)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need podman runc curl python3 cargo
cd "$ROOT"
run_started=$SECONDS
podman_cmd="podman"
[ "$(id -u)" -eq 0 ] || podman_cmd="sudo podman"

# crun fails on a hybrid cgroup layout; runc with cgroupfs runs everywhere.
podman=(podman --runtime runc --cgroup-manager cgroupfs)

if [ $# -gt 1 ]; then
  echo "usage: tests/host/container.sh [IMAGE]" >&2
  exit 2
fi
image=${1:-$(PODMAN=$podman_cmd packaging/container/build.sh | tail -n 1)}
cargo build --release --locked --quiet -p kyma-connector-sim

mkdir -p "$CACHE"
share=$(mktemp -d "$CACHE/container-run.XXXXXX")
name="kyma-certd-test-$$"
cleanup() {
  as_root "${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
  stop_sim
  if [ "${KEEP:-0}" = 1 ]; then log "kept $share"; else as_root rm -rf "$share"; fi
}
trap cleanup EXIT

# ulimit_below KIND CAP: the current soft limit, at most CAP. Raising a limit is not
# permitted in some containers, and podman's defaults would try to.
ulimit_below() {
  local current
  current=$(ulimit -S "$1")
  if [ "$current" = unlimited ] || [ "$current" -gt "$2" ]; then current=$2; fi
  printf '%s' "$current"
}
nofile=$(ulimit_below -n 4096)
nproc=$(ulimit_below -u 4096)

start_sim "$share/sim" --validity 30s
mkdir -p "$share/etc" "$share/state"
install -m 0644 "$share/sim/server-ca.pem" "$share/etc/connector-ca.pem"
mint_token >"$share/etc/token"
chmod 0644 "$share/etc/token"
metrics_port=$(free_port)
write_config "$share/etc/config.toml" "$metrics_port" "tests/host/container.sh"
# The shared volume belongs to the image's user, as an fsGroup would make it.
as_root chown 65532:65532 "$share/state"
as_root chmod 0750 "$share/state"

# The pod's securityContext: read-only root, uid 65532, no capabilities, no new privileges.
locked_down=(--network=host --read-only --user 65532:65532 --cap-drop=all
  --security-opt no-new-privileges --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc"
  -v "$share/etc:/etc/kyma-certd:ro" -v "$share/state:/var/lib/kyma-certd")
init_container() {
  as_root "${podman[@]}" run --rm "${locked_down[@]}" --entrypoint /kyma-certd "$image" \
    enroll --config /etc/kyma-certd/config.toml --if-needed --name web --token-file /etc/kyma-certd/token
}
fingerprint() { as_root sha256sum "$share/state/web/cert.pem" | cut -d' ' -f1; }

log "== init container: enroll --if-needed"
init_container >&2 || die "the init container failed"
first=$(fingerprint)
pass "enrolled (cert.pem sha256 ${first:0:16})"
out=$(init_container 2>&1) || die "the second init container failed: $out"
grep -q 'the token was not used' <<<"$out" || die "the second init container did not skip: $out"
[ "$(fingerprint)" = "$first" ] || die "the second init container changed the certificate"
pass "the second init container is a no-op: $out"

log "== sidecar"
as_root "${podman[@]}" run -d --name "$name" "${locked_down[@]}" "$image" >/dev/null ||
  die "the sidecar did not start"
readyz() { curl -sf -o /dev/null "http://127.0.0.1:$metrics_port/readyz"; }
wait_until 30 "/readyz to answer 200" readyz || die "/readyz is not 200"
pass "/readyz answers 200"
renewed() { [ "$(fingerprint)" != "$first" ]; }
wait_until 60 "a renewal on the shared volume" renewed || {
  as_root "${podman[@]}" logs "$name" >&2
  die "no renewal within 60 s"
}
pass "renewed on the shared volume (cert.pem sha256 $(fingerprint | cut -c1-16))"
key=$(as_root stat -L -c '%a %u' "$share/state/web/key.pem")
[ "$key" = "600 65532" ] || die "key.pem is '$key' (mode uid), want '600 65532'"
pass "key.pem is 0600, owned by 65532"

log "== SIGTERM"
as_root "${podman[@]}" stop -t 30 "$name" >/dev/null
code=$(as_root "${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || {
  as_root "${podman[@]}" logs "$name" >&2
  die "the sidecar exited with $code on SIGTERM"
}
pass "the sidecar exited 0 on SIGTERM"

size=$(as_root "${podman[@]}" image inspect --format '{{.Size}}' "$image")
log "PASS: container test, image $image is $((size / 1000)) kB, $((SECONDS - run_started))s in all"
