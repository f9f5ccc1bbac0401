# Shared by the bench scripts (sourced, not run): release builds, a scratch folder that
# is removed on exit, the connector simulator, statistics and a machine description.
# Everything listens on 127.0.0.1 only.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
RELEASE="$ROOT/target/release"
# Copies of the two builds of the daemon: the packaged one (no simulator inside) is
# what the daemon benchmarks run; the default one (with `demo`) is only measured for size.
BIN="$ROOT/target/bench"
CERTD="${CERTD:-$BIN/kyma-certd-packaged}"
SIM="$RELEASE/kyma-connector-sim"

log() { printf '%s\n' "$*" >&2; }

# Builds both variants of the daemon, the simulator and the bench examples, in release mode.
build() {
  mkdir -p "$BIN"
  (
    cd "$ROOT"
    log "building the packaged daemon (release, --no-default-features)"
    cargo build --release --quiet --no-default-features --bin kyma-certd
    cp "$RELEASE/kyma-certd" "$BIN/kyma-certd-packaged"
    log "building the default daemon, the simulator and the bench examples (release)"
    cargo build --release --quiet --workspace --bins --examples
    cp "$RELEASE/kyma-certd" "$BIN/kyma-certd-default"
  )
}

# A scratch folder, removed with every process started through `spawn` on exit.
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/kyma-certd-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn OUTFILE COMMAND...: runs COMMAND in the background, remembers its pid in LAST_PID.
spawn() {
  local out=$1
  shift
  "$@" >"$out" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# stop PID: SIGTERM and wait (only processes this script started).
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# wait_for_line FILE REGEX SECONDS: prints the first matching line, fails after SECONDS.
wait_for_line() {
  local file=$1 regex=$2 deadline=$((SECONDS + $3)) line
  while ((SECONDS < deadline)); do
    line=$(grep -m1 -E "$regex" "$file" 2>/dev/null || true)
    if [[ -n $line ]]; then
      printf '%s\n' "$line"
      return 0
    fi
    sleep 0.05
  done
  log "timed out waiting for /$regex/ in $file:"
  tail -20 "$file" >&2 || true
  return 1
}

# start_sim ARGS...: starts kyma-connector-sim in SCRATCH/sim; sets SIM_PID, SIM_CA,
# SIM_ADMIN, SIM_TOKEN_URL and SIM_MTLS_URL.
start_sim() {
  mkdir -p "$SCRATCH/sim"
  RUST_LOG=warn spawn "$SCRATCH/sim/out.log" "$SIM" --out-dir "$SCRATCH/sim" "$@"
  SIM_PID=$LAST_PID
  SIM_ADMIN=$(wait_for_line "$SCRATCH/sim/out.log" '^admin API:' 30 | awk '{print $3}')
  SIM_TOKEN_URL=$(grep -m1 '^Compass token URL:' "$SCRATCH/sim/out.log" | awk '{print $4}')
  SIM_MTLS_URL=$(grep -m1 '^Compass mTLS URL:' "$SCRATCH/sim/out.log" | awk '{print $4}')
  SIM_CA="$SCRATCH/sim/server-ca.pem"
}

# mint_token [CLIENT_ID]: a one-time Compass token from the simulator's admin API.
mint_token() {
  local query=""
  [[ -n ${1:-} ]] && query="?client_id=$1"
  curl -sf -X POST "${SIM_ADMIN}tokens/compass$query" | jq -r .token
}

# now_ms: wall clock in milliseconds (no fork).
now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  printf '%s' "$((t / 1000)).$(printf '%03d' $((t % 1000)))"
}

# elapsed_ms START_US END_US
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1000 }'; }

us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }

# stats FILE [FORMAT]: "median min max n" of the numbers in FILE (one per line).
stats() {
  local fmt=${2:-%.1f}
  sort -g "$1" | awk -v f="$fmt" '
    { a[NR] = $1 }
    END {
      if (NR == 0) { print "- - - 0"; exit }
      m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      printf f " " f " " f " %d\n", m, a[1], a[NR], NR
    }'
}

# quantile FILE Q: the Q-quantile (nearest rank) of the numbers in FILE.
quantile() {
  sort -g "$1" | awk -v q="$2" '
    { a[NR] = $1 }
    END { if (NR == 0) { print "-"; exit } r = int(q * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR; print a[r] }'
}

# cell FILE [FORMAT]: "median (min–max)" for a table cell.
cell() {
  local s
  s=$(stats "$@")
  awk '{ printf "%s (%s–%s)", $1, $2, $3 }' <<<"$s"
}

median() { stats "$@" | awk '{print $1}'; }

# machine: one Markdown line describing where the numbers come from.
machine() {
  local cpu cores mem kernel load
  cpu=$(awk -F: '/^model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
  cores=$(nproc)
  mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
  kernel=$(uname -sr)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '%s, %s cores, %s RAM, %s; load average %s when this part started\n' \
    "$cpu" "$cores" "$mem" "$kernel" "$load"
}

# proc_field PID FIELD: a "Name:  value" field of /proc/PID/status (first number).
proc_field() { awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status"; }

# cpu_ticks PID: utime + stime of the whole process, in clock ticks.
cpu_ticks() {
  # Fields after the command name, which is in parentheses and may contain spaces.
  sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# ctx_switches PID: voluntary and involuntary context switches summed over all threads.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { print v + 0, n + 0 }'
}
