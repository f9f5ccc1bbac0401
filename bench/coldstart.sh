#!/usr/bin/env bash
# Cold start: from spawning `kyma-certd run` to systemd's READY=1 on a NOTIFY_SOCKET
# (bench/examples/coldstart.rs), for 1 certificate (RSA 4096, the default key) and for
# 1,000 (ECDSA, to enroll them quickly; start-up does not generate keys), metrics on.
#
# Usage: bench/coldstart.sh   (RUNS_ONE, default 20; RUNS_MANY, default 10; MANY, default 1000)
source "$(dirname "$0")/lib.sh"

RUNS_ONE=${RUNS_ONE:-20}
RUNS_MANY=${RUNS_MANY:-10}
MANY=${MANY:-1000}

build
echo "### Cold start to READY=1"
echo
echo "Machine: $(machine)"
echo

start_sim --validity 90d --accept-ecdsa --token-ttl 1h

write_config() { # FILE COUNT KEY
  {
    printf '[metrics]\nlisten = "127.0.0.1:0"\n\n[defaults]\nserver_ca_file = "%s"\nkey_algorithm = "%s"\n\n' "$SIM_CA" "$3"
    for ((i = 1; i <= $2; i++)); do
      printf '[[certificate]]\nname = "c%04d"\nprotocol = "compass"\ndir = "%s/certs-%s/c%04d"\nconnector_url = "%s"\n\n' \
        "$i" "$SCRATCH" "$2" "$i" "$SIM_TOKEN_URL"
    done
  } >"$1"
}

R="$SCRATCH/results"
mkdir -p "$R"
rows=()
for spec in "1:rsa4096:$RUNS_ONE" "$MANY:ecdsa-p256:$RUNS_MANY"; do
  IFS=: read -r count key runs <<<"$spec"
  config="$SCRATCH/config-$count.toml"
  write_config "$config" "$count" "$key"
  "$RELEASE/examples/enroll_many" "$config" "$SIM_ADMIN" 8 >/dev/null
  log "cold start with $count certificate(s), $runs runs"
  "$RELEASE/examples/coldstart" "$CERTD" "$config" "$runs" >"$R/out-$count"
  grep '^ready' "$R/out-$count" | awk '{print $2}' >"$R/ready-$count"
  grep '^stopped' "$R/out-$count" | awk '{print $2}' >"$R/stopped-$count"
  rows+=("| $count | $key | $runs | $(cell "$R/ready-$count" %.1f) | $(cell "$R/stopped-$count" %.1f) |")
done

echo "Milliseconds, median (min–max): from spawn (fork + exec) to the READY=1 datagram, and from"
echo "SIGTERM to exit. Logs at info level go to /dev/null."
echo
echo "| certificates | key | runs | exec → READY=1 | SIGTERM → exit |"
echo "|---:|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
one=$(median "$R/ready-1" %.1f)
echo "Target: under 50 ms for one certificate: $(awk -v x="$one" 'BEGIN { print (x < 50) ? "met" : "MISSED" }') (median $one ms)."
