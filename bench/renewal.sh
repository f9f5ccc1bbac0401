#!/usr/bin/env bash
# Renewal time: `kyma-certd renew --force` against the manual openssl + curl + base64 flow
# (bench/manual-renew.sh), alternating, against the same simulator, per key type. Also the
# floors: bare in-process key generation, one mTLS loopback round trip as the daemon makes
# it, and the whole flow in-process (no process start-up).
#
# Usage: bench/renewal.sh   (N_RSA, default 30, and N_EC, default 40, set the run counts)
source "$(dirname "$0")/lib.sh"

N_RSA=${N_RSA:-30}
N_EC=${N_EC:-40}
ALGS=(rsa2048 rsa4096 ecdsa-p256)
runs_for() { [[ $1 == ecdsa-p256 ]] && echo "$N_EC" || echo "$N_RSA"; }

build
echo "### Renewal: kyma-certd against the manual way"
echo
echo "Machine: $(machine)"
echo

start_sim --validity 1d --accept-ecdsa
config="$SCRATCH/config.toml"
{
  printf '[daemon]\nlog_level = "warn"\n\n[metrics]\nlisten = ""\n\n'
  printf '[defaults]\nserver_ca_file = "%s"\n\n' "$SIM_CA"
  for alg in "${ALGS[@]}"; do
    for who in certd manual; do
      printf '[[certificate]]\nname = "%s-%s"\nprotocol = "compass"\ndir = "%s/certs/%s-%s"\n' \
        "$who" "$alg" "$SCRATCH" "$who" "$alg"
      printf 'connector_url = "%s"\nkey_algorithm = "%s"\n\n' "$SIM_TOKEN_URL" "$alg"
    done
  done
} >"$config"

for alg in "${ALGS[@]}"; do
  for who in certd manual; do
    mint_token | "$CERTD" --config "$config" enroll --name "$who-$alg" --token-file - >/dev/null
  done
  mkdir -p "$SCRATCH/manual/$alg"
  cp -L "$SCRATCH/certs/manual-$alg/cert.pem" "$SCRATCH/manual/$alg/client.crt"
  cp -L "$SCRATCH/certs/manual-$alg/key.pem" "$SCRATCH/manual/$alg/client.key"
done

run_certd() { "$CERTD" --config "$config" renew --name "certd-$1" --force >/dev/null; }
run_version() { "$CERTD" --version >/dev/null; }
run_manual() { "$BENCH_DIR/manual-renew.sh" "$SCRATCH/manual/$1" "$SIM_CA" "$SIM_MTLS_URL" "$1" >/dev/null; }
timed() {
  local a b
  a=$(us)
  "$@"
  b=$(us)
  elapsed_ms "$a" "$b"
}

R="$SCRATCH/results"
mkdir -p "$R"
for alg in "${ALGS[@]}"; do
  n=$(runs_for "$alg")
  log "renewal $alg: $n pairs, alternating"
  for ((i = 0; i < n; i++)); do
    if ((i % 2 == 0)); then
      c=$(timed run_certd "$alg")
      m=$(timed run_manual "$alg")
    else
      m=$(timed run_manual "$alg")
      c=$(timed run_certd "$alg")
    fi
    echo "$c" >>"$R/certd-$alg"
    echo "$m" >>"$R/manual-$alg"
    awk -v m="$m" -v c="$c" 'BEGIN { printf "%.3f\n", m / c }' >>"$R/ratio-$alg"
  done
  log "floors $alg"
  "$RELEASE/examples/keygen" "$alg" "$n" | awk '{print $2}' >"$R/keygen-$alg"
  "$RELEASE/examples/roundtrip" rtt "$config" "certd-$alg" "$n" | awk '{print $2}' >"$R/rtt-$alg"
  "$RELEASE/examples/roundtrip" renew "$config" "certd-$alg" "$n" | awk '{print $2}' >"$R/inproc-$alg"
  "$RELEASE/examples/roundtrip" steps "$config" "certd-$alg" "$n" >"$R/steps-$alg"
  for ((i = 0; i < n; i++)); do
    timed run_version >>"$R/start-$alg"
  done
  case $alg in
    rsa2048) gen=(openssl genrsa 2048) ;;
    rsa4096) gen=(openssl genrsa 4096) ;;
    ecdsa-p256) gen=(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256) ;;
  esac
  for ((i = 0; i < n; i++)); do
    a=$(us)
    "${gen[@]}" >/dev/null 2>&1
    b=$(us)
    elapsed_ms "$a" "$b" >>"$R/openssl-$alg"
  done
done

fmt_for() { [[ $1 == ecdsa-p256 ]] && echo "%.2f" || echo "%.0f"; }
echo "Milliseconds, median (min–max). Pairs alternate which flow goes first; the ratio is"
echo "taken pair by pair (manual ÷ kyma-certd of the same pair), then its median."
echo
echo "| key | runs | kyma-certd renew | manual way | manual ÷ kyma-certd | target ≥ 3 |"
echo "|---|---:|---:|---:|---:|---|"
for alg in "${ALGS[@]}"; do
  f=$(fmt_for "$alg")
  ratio=$(median "$R/ratio-$alg" %.2f)
  verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 3) ? "met" : "MISSED" }')
  echo "| $alg | $(runs_for "$alg") | $(cell "$R/certd-$alg" "$f") | $(cell "$R/manual-$alg" "$f") | $ratio ($(stats "$R/ratio-$alg" %.2f | awk '{print $2 "–" $3}')) | $verdict |"
done
echo
echo "Floors, same milliseconds. keygen: one key in a warm process (the daemon's code);"
echo "round trip: a new connector, TCP + TLS handshake with the current certificate and one"
echo "request to the simulator, as each of the two requests of a renewal does; in-process:"
echo "the whole renewal flow without starting a process; process start: \`kyma-certd --version\`"
echo "from the shell, what every one-shot command pays before its first step; openssl:"
echo "\`openssl genrsa\`/\`genpkey\` as a process, one search (kyma-certd's one-shot commands"
echo "race one search per CPU, the keygen column is one search)."
echo
echo "| key | keygen | round trip | floor = keygen + 2 round trips | kyma-certd ÷ floor | target ≤ 1.3 | in-process renewal | process start | openssl keygen |"
echo "|---|---:|---:|---:|---:|---|---:|---:|---:|"
for alg in "${ALGS[@]}"; do
  f=$(fmt_for "$alg")
  kg=$(median "$R/keygen-$alg" %.3f)
  rtt=$(median "$R/rtt-$alg" %.3f)
  certd=$(median "$R/certd-$alg" %.3f)
  floor=$(awk -v k="$kg" -v r="$rtt" 'BEGIN { printf "%.3f", k + 2 * r }')
  over=$(awk -v c="$certd" -v f="$floor" 'BEGIN { printf "%.2f", c / f }')
  verdict=$(awk -v o="$over" 'BEGIN { print (o <= 1.3) ? "met" : "MISSED" }')
  echo "| $alg | $(cell "$R/keygen-$alg" "$f") | $(cell "$R/rtt-$alg" %.1f) | $(printf "$f" "$floor") | $over | $verdict | $(cell "$R/inproc-$alg" "$f") | $(cell "$R/start-$alg" %.1f) | $(cell "$R/openssl-$alg" "$f") |"
done

STEPS=(load connector first-request keygen csr sign-request verify swap state)
echo
echo "Where an in-process renewal spends its time: median milliseconds per step"
echo "(bench/examples/roundtrip.rs \`steps\`, the same code path as src/flow/renew.rs). swap and"
echo "state.json are the durable writes (fsync of every file and directory entry)."
echo
printf '| key |'
for step in "${STEPS[@]}"; do printf ' %s |' "$step"; done
printf ' sum |\n|---|'
for _ in "${STEPS[@]}"; do printf -- '---:|'; done
printf -- '---:|\n'
for alg in "${ALGS[@]}"; do
  printf '| %s |' "$alg"
  total=0
  for step in "${STEPS[@]}"; do
    awk -v s="$step" '$2 == s { print $3 }' "$R/steps-$alg" >"$R/step"
    m=$(median "$R/step" %.2f)
    total=$(awk -v a="$total" -v b="$m" 'BEGIN { print a + b }')
    printf ' %s |' "$m"
  done
  printf ' %.1f |\n' "$total"
done
