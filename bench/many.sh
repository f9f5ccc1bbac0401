#!/usr/bin/env bash
# Many certificates in one daemon: N certificates (default 1,000) with short validity
# against the simulator, while /metrics is scraped ten times a second. Reports the peak
# RSS, the scrape latency, the most renewals seen in flight at once (bounded by
# max_concurrent_renewals), and whether every certificate was renewed before it expired.
#
# Usage: bench/many.sh   (N; VARIANTS, default "ecdsa-p256:120 rsa2048:240" = key:validity
# in seconds; CONCURRENCY, the max_concurrent_renewals, default 4; KEEP, a folder to keep
# the raw scrape times and daemon logs in)
source "$(dirname "$0")/lib.sh"

N=${N:-1000}
VARIANTS=${VARIANTS:-"ecdsa-p256:120 rsa2048:240"}
CONCURRENCY=${CONCURRENCY:-4}

build
echo "### Many certificates in one daemon"
echo
echo "Machine: $(machine)"
echo

ROWS="$SCRATCH/rows"
CHECKS="$SCRATCH/checks"
: >"$ROWS"
: >"$CHECKS"

run_variant() {
  local key=$1 validity=$2
  local V="$SCRATCH/$key"
  mkdir -p "$V"
  SCRATCH_V=$V
  log "== $N certificates, $key, ${validity}s validity"
  mkdir -p "$V/sim"
  RUST_LOG=warn spawn "$V/sim/out.log" "$SIM" --out-dir "$V/sim" --validity "${validity}s" --accept-ecdsa --token-ttl 1h
  local sim_pid=$LAST_PID
  SIM_ADMIN=$(wait_for_line "$V/sim/out.log" '^admin API:' 30 | awk '{print $3}')
  local token_url
  token_url=$(grep -m1 '^Compass token URL:' "$V/sim/out.log" | awk '{print $4}')

  local config="$V/config.toml"
  {
    printf '[daemon]\nmax_concurrent_renewals = %s\n\n[metrics]\nlisten = "127.0.0.1:0"\n\n' "$CONCURRENCY"
    printf '[defaults]\nserver_ca_file = "%s"\nkey_algorithm = "%s"\n' "$V/sim/server-ca.pem" "$key"
    printf 'retry_min = "1s"\nretry_max = "10s"\ntimeout = "10s"\n\n'
    for ((i = 1; i <= N; i++)); do
      printf '[[certificate]]\nname = "c%04d"\nprotocol = "compass"\ndir = "%s/certs/c%04d"\nconnector_url = "%s"\n\n' \
        "$i" "$V" "$i" "$token_url"
    done
  } >"$config"

  local a b
  a=$(us)
  "$RELEASE/examples/enroll_many" "$config" "$SIM_ADMIN" 8 >"$V/enroll.out"
  b=$(us)
  local enrolled_at=$SECONDS
  local enroll_s
  enroll_s=$(elapsed_ms "$a" "$b" | awk '{ printf "%.1f", $1 / 1000 }')
  log "enrolled $N in ${enroll_s}s"
  "$CERTD" --config "$config" status --json >"$V/status-before.json"

  spawn "$V/daemon.log" env -u NOTIFY_SOCKET -u WATCHDOG_USEC "$CERTD" --config "$config" run
  local daemon=$LAST_PID
  local addr
  addr=$(wait_for_line "$V/daemon.log" 'metrics on http://' 60 | grep -oE '127\.0\.0\.1:[0-9]+' | head -1)
  wait_for_line "$V/daemon.log" ' ready' 60 >/dev/null

  spawn "$V/scrape.out" "$RELEASE/examples/scrape" "$addr" 100 "$V/stop"
  local scraper=$LAST_PID
  # Until every original certificate has expired, plus a margin: by then each one must
  # have been renewed (an expired one cannot be renewed any more).
  local until=$((enrolled_at + validity + 20))
  : >"$V/threads"
  while ((SECONDS < until)); do
    proc_field "$daemon" Threads >>"$V/threads"
    sleep 1
  done
  touch "$V/stop"
  wait "$scraper" || true
  local hwm
  hwm=$(proc_field "$daemon" VmHWM)
  curl -sf "http://$addr/metrics" >"$V/metrics.txt"
  "$CERTD" --config "$config" status --json >"$V/status-after.json" || true
  curl -sf "${SIM_ADMIN}certificates" >"$V/issued.json"
  stop "$daemon"
  stop "$sim_pid"
  # KEEP=DIR keeps each variant's scrape times and daemon log for a closer look.
  if [[ -n ${KEEP:-} ]]; then
    mkdir -p "$KEEP"
    cp "$V/scrape.out" "$KEEP/$key-scrape.out"
    cp "$V/daemon.log" "$KEEP/$key-daemon.log"
  fi

  grep '^scrape' "$V/scrape.out" | awk '{print $2}' >"$V/scrape-all"
  grep '^scrape' "$V/scrape.out" | awk '$4 > 0 {print $2}' >"$V/scrape-busy"
  local errors
  errors=$(grep -c '^error' "$V/scrape.out" || true)
  local inflight
  inflight=$(grep '^scrape' "$V/scrape.out" | awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }')
  local size
  size=$(grep '^scrape' "$V/scrape.out" | awk '{print $3}' | sort -n | tail -1)
  local verdict
  verdict=$(python3 "$BENCH_DIR/many_check.py" "$V/status-before.json" "$V/status-after.json" "$V/issued.json" "$V/metrics.txt" "$validity")
  local p99_busy
  p99_busy=$(quantile "$V/scrape-busy" 0.99)
  q() { awk '{ printf "%.1f", $1 }' <<<"$(quantile "$1" "$2")"; }
  printf '| %s | %ss | %s s | %.1f | %s | %s / %s | %s / %s / %s | %s / %s / %s / %s | %s | %s | %s kB |\n' \
    "$key" "$validity" "$enroll_s" \
    "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" \
    "$(sort -n "$V/threads" | tail -1)" \
    "$inflight" "$CONCURRENCY" \
    "$(q "$V/scrape-all" 0.5)" "$(q "$V/scrape-all" 0.99)" "$(q "$V/scrape-all" 1)" \
    "$(q "$V/scrape-busy" 0.5)" "$(q "$V/scrape-busy" 0.9)" "$(q "$V/scrape-busy" 0.99)" "$(q "$V/scrape-busy" 1)" \
    "$(wc -l <"$V/scrape-busy")/$(wc -l <"$V/scrape-all")" \
    "$errors" \
    "$((size / 1024))" >>"$ROWS"
  {
    echo "- $key, ${validity}s: $verdict"
    awk -v h="$hwm" -v p="$p99_busy" -v i="$inflight" -v c="$CONCURRENCY" 'BEGIN {
      printf "  targets: peak RSS ≤ 40 MiB %s; scrape p99 < 10 ms while renewing %s; in flight ≤ %d %s\n",
        (h / 1024 <= 40) ? "met" : "MISSED", (p < 10) ? "met" : "MISSED", c, (i <= c && i > 0) ? "met" : "MISSED" }'
  } >>"$CHECKS"
}

for variant in $VARIANTS; do
  run_variant "${variant%%:*}" "${variant##*:}"
done

echo "$N certificates in one daemon, renew_at 70%, jitter 5%, max_concurrent_renewals $CONCURRENCY;"
echo "enrolled 8 at a time through the library's enrollment flow (bench/examples/enroll_many.rs),"
echo "then \`kyma-certd run\` until every original certificate had expired. /metrics scraped every"
echo "100 ms on a new connection with Prometheus's Accept header (OpenMetrics); \"busy\" scrapes are"
echo "those that saw at least one certificate in state renewing. Scrape times in milliseconds."
echo
echo "| key | validity | enroll all | peak RSS (MiB) | max threads | renewing at once (seen / bound) | scrape p50 / p99 / max, all | scrape p50 / p90 / p99 / max, busy | busy / all scrapes | scrape errors | /metrics size |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
cat "$ROWS"
echo
cat "$CHECKS"
