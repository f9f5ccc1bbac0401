# Shared by the host-level tests (sourced, not run): root or sudo, a scratch folder
# removed on exit, polling with a deadline, and the connector simulator on 127.0.0.1.

set -euo pipefail

HOST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HOST_DIR/../.." && pwd)
# Build outputs and caches of these tests live under target/, like cargo's.
CACHE="$ROOT/target/host-tests"

log() { printf '%s\n' "$*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}
pass() { log "ok: $*"; }

# as_root COMMAND...: runs COMMAND as root, through sudo when this shell is not root.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -- "$@"
  else
    die "this test needs root: run it as root or install sudo"
  fi
}

# need TOOL...: fails clearly when a tool is missing (tests/setup.sh installs them).
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (run tests/setup.sh)"
  done
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds;
# fails with DESCRIPTION after SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || {
      log "timed out waiting for: $what"
      return 1
    }
    sleep 0.2
  done
}

# The simulator: started by start_sim, stopped on exit.
SIM_PID=
stop_sim() {
  if [ -n "$SIM_PID" ]; then
    kill -TERM "$SIM_PID" 2>/dev/null || true
    wait "$SIM_PID" 2>/dev/null || true
    SIM_PID=
  fi
}

# start_sim DIR ARGS...: starts kyma-connector-sim writing its CAs to DIR; sets SIM_ADMIN
# (the admin API's base URL) and SIM_TOKEN_URL (the Compass token URL).
start_sim() {
  local dir=$1
  shift
  mkdir -p "$dir"
  RUST_LOG=warn "$ROOT/target/release/kyma-connector-sim" --out-dir "$dir" "$@" >"$dir/out.log" 2>&1 &
  SIM_PID=$!
  wait_until 30 "the simulator's admin API" grep -qs '^admin API:' "$dir/out.log" ||
    die "the simulator did not start: $(cat "$dir/out.log")"
  SIM_ADMIN=$(awk '/^admin API:/ { print $3; exit }' "$dir/out.log")
  SIM_TOKEN_URL=$(awk '/^Compass token URL:/ { print $4; exit }' "$dir/out.log")
}

# mint_token: a one-time Compass token from the simulator's admin API.
mint_token() {
  curl -sSf -X POST "${SIM_ADMIN}tokens/compass" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# write_config FILE PORT WRITER: the configuration the container test runs the daemon with
# (the booted-systemd test runs the README's minimal example instead): one compass certificate "web", renewed at half its life against the simulator
# (SIM_TOKEN_URL), its CA at /etc/kyma-certd/connector-ca.pem, metrics on 127.0.0.1:PORT.
write_config() {
    cat >"$1" <<TOML
# Written by $3.
[metrics]
listen = "127.0.0.1:$2"

[defaults]
renew_at = "50%"
jitter = "5%"
retry_min = "2s"
retry_max = "10s"
key_algorithm = "rsa2048"

[[certificate]]
name = "web"
protocol = "compass"
dir = "/var/lib/kyma-certd/web"
server_ca_file = "/etc/kyma-certd/connector-ca.pem"
connector_url = "$SIM_TOKEN_URL"
TOML
}
