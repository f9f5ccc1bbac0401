#!/usr/bin/env bash
# Idle footprint: `kyma-certd run` with one enrolled certificate (90-day validity) and the
# metrics endpoint on, no systemd watchdog. After a 15 s settle, watches it for 60 s and
# reports RSS, threads, CPU ticks and context switches (all threads) from /proc. Several
# daemons run side by side, each its own run (they are idle: they do not disturb each other).
#
# Usage: bench/idle.sh   (RUNS, default 3; WINDOW seconds, default 60)
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
WINDOW=${WINDOW:-60}
SETTLE=15

build
echo "### Idle daemon"
echo
echo "Machine: $(machine)"
echo

start_sim --validity 90d
pids=()
for ((r = 0; r < RUNS; r++)); do
  config="$SCRATCH/config-$r.toml"
  cat >"$config" <<TOML
[metrics]
listen = "127.0.0.1:0"

[[certificate]]
name = "orders"
protocol = "compass"
dir = "$SCRATCH/certs-$r/orders"
server_ca_file = "$SIM_CA"
connector_url = "$SIM_TOKEN_URL"
key_algorithm = "rsa2048"
TOML
  mint_token | "$CERTD" --config "$config" enroll --name orders --token-file - >/dev/null
done
stop "$SIM_PID"

for ((r = 0; r < RUNS; r++)); do
  env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID \
    "$CERTD" --config "$SCRATCH/config-$r.toml" run >"$SCRATCH/daemon-$r.log" 2>&1 &
  pids+=($!)
  PIDS+=($!)
done
for ((r = 0; r < RUNS; r++)); do
  addr=$(wait_for_line "$SCRATCH/daemon-$r.log" 'metrics on http://' 30 | grep -oE '127\.0\.0\.1:[0-9]+' | head -1)
  wait_for_line "$SCRATCH/daemon-$r.log" ' ready' 30 >/dev/null
  # The endpoints answer (and then the daemon is left alone).
  metrics=$(curl -sf "http://$addr/metrics")
  grep -q '^kyma_certd_certificate_not_after_timestamp_seconds' <<<"$metrics"
  curl -sf "http://$addr/readyz" >/dev/null
done

sleep "$SETTLE"
R="$SCRATCH/results"
mkdir -p "$R"
declare -A t0 v0 n0
for ((r = 0; r < RUNS; r++)); do
  p=${pids[$r]}
  t0[$r]=$(cpu_ticks "$p")
  read -r v0[$r] n0[$r] < <(ctx_switches "$p")
done
log "watching ${RUNS} idle daemons for ${WINDOW}s"
sleep "$WINDOW"
for ((r = 0; r < RUNS; r++)); do
  p=${pids[$r]}
  read -r v n < <(ctx_switches "$p")
  echo $(($(cpu_ticks "$p") - t0[$r])) >>"$R/ticks"
  cpu_ticks "$p" >>"$R/ticks-total"
  awk -v d=$((v - v0[$r])) -v w="$WINDOW" 'BEGIN { printf "%.1f\n", d * 60 / w }' >>"$R/vol"
  awk -v d=$((n - n0[$r])) -v w="$WINDOW" 'BEGIN { printf "%.1f\n", d * 60 / w }' >>"$R/invol"
  awk -v k="$(proc_field "$p" VmRSS)" 'BEGIN { printf "%.2f\n", k / 1024 }' >>"$R/rss"
  awk -v k="$(proc_field "$p" VmHWM)" 'BEGIN { printf "%.2f\n", k / 1024 }' >>"$R/hwm"
  proc_field "$p" Threads >>"$R/threads"
done
for p in "${pids[@]}"; do stop "$p"; done

rss=$(stats "$R/rss" %.2f | awk '{print $3}')
ticks=$(stats "$R/ticks" %.0f | awk '{print $3}')
vol=$(stats "$R/vol" %.1f | awk '{print $3}')
echo "$RUNS daemons, each watched for ${WINDOW} s after a ${SETTLE} s settle; median (min–max) over the daemons."
echo "Context switches are summed over all threads of the process, per minute of the window."
echo
echo "| measure | value | target |"
echo "|---|---:|---|"
echo "| RSS (MiB) | $(cell "$R/rss" %.2f) | ≤ 8: $(awk -v x="$rss" 'BEGIN { print (x <= 8) ? "met" : "MISSED" }') |"
echo "| peak RSS since start, VmHWM (MiB) | $(cell "$R/hwm" %.2f) | |"
echo "| threads | $(cell "$R/threads" %.0f) | |"
echo "| CPU ticks in the window (1 tick = 10 ms) | $(cell "$R/ticks" %.0f) | 0: $(awk -v x="$ticks" 'BEGIN { print (x == 0) ? "met" : "MISSED" }') |"
echo "| CPU ticks since exec, start-up and enrollment check included | $(cell "$R/ticks-total" %.0f) | |"
echo "| voluntary context switches per minute | $(cell "$R/vol" %.1f) | a few: $(awk -v x="$vol" 'BEGIN { print (x <= 5) ? "met" : "MISSED" }') |"
echo "| involuntary context switches per minute | $(cell "$R/invol" %.1f) | |"
