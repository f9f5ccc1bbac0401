#!/usr/bin/env bash
# The booted-systemd test: boots Debian 12 with systemd in a container (systemd-nspawn,
# --volatile=overlay over the cached tree from tests/host/debian-tree.sh, so every run
# starts clean), installs the .deb, enrolls against the connector simulator on the host's
# loopback (the container shares the host's network) and runs tests/host/systemd-inside.sh
# there with the README's minimal configuration: READY and STATUS, `status` as a member of
# the daemon's group, an upgrade that validates the configuration first, renewals in the
# sandbox, reload, the watchdog, a journal without denials, and every hook type reaching
# nginx running as root.
#
# Needs root (or sudo), systemd-nspawn (systemd-container), debootstrap and curl.
# Usage: tests/host/systemd.sh [PACKAGE.deb]   (default: build it with packaging/deb/build.sh)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need systemd-nspawn debootstrap curl python3 cargo
cd "$ROOT"
run_started=$SECONDS

if [ $# -gt 1 ]; then
  echo "usage: tests/host/systemd.sh [PACKAGE.deb]" >&2
  exit 2
fi
if [ $# -eq 1 ]; then
  deb=$1
else
  deb=$(packaging/deb/build.sh | tail -n 1)
fi
[ -f "$deb" ] || die "no package at '$deb'"
cargo build --release --locked --quiet -p kyma-connector-sim
tree=$("$HOST_DIR/debian-tree.sh")

mkdir -p "$CACHE"
share=$(mktemp -d "$CACHE/systemd-run.XXXXXX")
boot_log="$share/boot.log"
cleanup() {
  stop_sim
  if [ "${KEEP:-0}" = 1 ]; then log "kept $share"; else rm -rf "$share"; fi
}
trap cleanup EXIT
# The service user inside reads the token and the configuration from here.
chmod 0755 "$share"

# Certificates live 30 s and are renewed at half of that: a scheduled renewal within
# about 15 s of the start.
start_sim "$share/sim" --validity 30s
install -m 0644 "$share/sim/server-ca.pem" "$share/connector-ca.pem"
mint_token >"$share/token"
chmod 0644 "$share/token"
install -m 0644 "$deb" "$share/kyma-certd.deb"
install -m 0755 "$HOST_DIR/systemd-inside.sh" "$share/inside.sh"
metrics_port=$(free_port)
echo "METRICS_PORT=$metrics_port" >"$share/env"
# The README's minimal configuration, verbatim but for the connector URL (the simulator's),
# after [metrics] and [defaults] tables of the test's own: its port, a short renewal cycle
# and the simulator's CA (server_ca_file may be inherited). base.toml is the same without
# the README's hook: the later steps append hooks of their own.
python3 - "$ROOT/README.md" "$SIM_TOKEN_URL" "$metrics_port" "$share" <<'PY'
import sys
readme, url, port, share = sys.argv[1:5]
text = open(readme, encoding="utf-8").read()
after = text.split("A minimal configuration", 1)[1]
block = after.split("```toml\n", 1)[1].split("```", 1)[0]
placeholder = "https://compass-gateway.example.com/connector/graphql"
if block.count(placeholder) != 1:
    sys.exit(f"the README's minimal example does not name {placeholder} once:\n{block}")
block = block.replace(placeholder, url)
head = f"""# Written by tests/host/systemd.sh: the README's minimal example after the test's tables.
[metrics]
listen = "127.0.0.1:{port}"

[defaults]
renew_at = "50%"
jitter = "5%"
retry_min = "2s"
retry_max = "10s"
key_algorithm = "rsa2048"
server_ca_file = "/etc/kyma-certd/connector-ca.pem"

"""
open(f"{share}/config.toml", "w", encoding="utf-8").write(head + block)
base = block.split("[[certificate.on_renew]]", 1)[0]
open(f"{share}/base.toml", "w", encoding="utf-8").write(head + base)
PY

# The test runs as a oneshot unit of the booted system, and powers it off when done.
cat >"$share/kyma-certd-test.service" <<'UNIT'
[Unit]
Description=kyma-certd booted-systemd test
After=nginx.service dbus.service systemd-logind.service

[Service]
Type=oneshot
ExecStart=/share/inside.sh
ExecStopPost=/bin/systemctl poweroff --no-block
TimeoutStartSec=600
UNIT

log "booting $tree (volatile overlay)"
boot_started=$SECONDS
status=0
# systemd.wants= on init's command line adds the test unit to the boot transaction.
as_root timeout 900 systemd-nspawn --quiet --register=no --keep-unit --volatile=overlay \
  --console=read-only -D "$tree" --bind="$share:/share" \
  --bind-ro="$share/kyma-certd-test.service:/etc/systemd/system/kyma-certd-test.service" \
  -b -- systemd.wants=kyma-certd-test.service </dev/null >"$boot_log" 2>&1 || status=$?
boot_seconds=$((SECONDS - boot_started))

cat "$share/inside.log" 2>/dev/null >&2 || true
result=$(cat "$share/result" 2>/dev/null || echo "no result (the test unit did not run)")
if [ "$result" != PASS ]; then
  log "--- boot log (last lines)"
  tail -n 40 "$boot_log" >&2 || true
  log "--- journal (last lines)"
  tail -n 80 "$share/journal.txt" >&2 2>/dev/null || true
  die "booted-systemd test: $result (systemd-nspawn exit $status)"
fi
log "PASS: booted-systemd test, ${boot_seconds}s in the container, $((SECONDS - run_started))s in all"
