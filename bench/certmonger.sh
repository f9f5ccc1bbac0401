#!/usr/bin/env bash
# kyma-certd beside certmonger, the renewal daemon a Red Hat or FreeIPA host already runs,
# in one run: each daemon tracks 1, 100 and 1,000 certificates (RSA 2048, 90 days), is
# started, timed to ready, left idle and read from /proc: VmRSS, RssAnon, PSS, threads,
# CPU for the start, CPU and context switches (wakeups) over an idle window. At 100 and
# 1,000 certificates both daemons' memory is scanned for the private keys they track
# (bench/keyscan.py) after the start and again after a round of renewals.
#
# certmonger (installed with apt when missing) runs in the foreground (`-s -n -d 3`) on
# a private `dbus-daemon --session` without service activation, with every state folder
# in the scratch folder (CERTMONGER_* variables), and signs through an external CA
# helper (bench/certmonger-ca-helper: `openssl x509 -req` with a local CA). Its keys are
# written beforehand by bench/examples/keyfiles.rs and it requests one certificate per
# key. It is ready when every request has logged its next revisit (it is back in
# MONITORING); debug level 3 is what prints that line. kyma-certd (the packaged build,
# metrics on, scraped once before its memory is read) tracks certificates enrolled at
# the connector simulator and is ready at its READY=1 (bench/notify_ready.py). Renewals: SIGUSR1 to kyma-certd (new keys, as
# `rotate_key` defaults), `getcert resubmit` of every request for certmonger (same keys).
#
# Usage: bench/certmonger.sh   (COUNTS, default "1 100 1000"; IDLE_WINDOW, idle seconds,
# default 20; SCAN_AT, the counts with key scans, default "100 1000"; SETTLE, seconds
# from ready to the measurements, default 15: tokio's blocking threads from the start
# idle out after 10 s; DAEMONS, default "kyma-certd certmonger": leave one out to look
# at the other alone, the tables then miss its rows)
source "$(dirname "$0")/lib.sh"

COUNTS=${COUNTS:-"1 100 1000"}
WINDOW=${IDLE_WINDOW:-20}
SCAN_AT=${SCAN_AT:-"100 1000"}
SETTLE=${SETTLE:-15}
DAEMONS=${DAEMONS:-"kyma-certd certmonger"}
runs() { [[ " $DAEMONS " == *" $1 "* ]]; }
KEY=rsa2048
MAX=$(tr ' ' '\n' <<<"$COUNTS" | sort -n | tail -1)
MIN=$(tr ' ' '\n' <<<"$COUNTS" | sort -n | head -1)
# Per-certificate figures are taken between the smallest and the largest count.
[[ $MIN -lt $MAX ]] || {
  log "COUNTS needs two different counts"
  exit 2
}

install_certmonger() {
  command -v certmonger >/dev/null && command -v dbus-daemon >/dev/null && return 0
  log "installing certmonger (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends certmonger dbus >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends certmonger dbus >&2; }
}

install_certmonger
build
CM_VERSION=$(dpkg-query -W -f '${Version}' certmonger 2>/dev/null || certmonger --version | awk '{print $2}')
echo "### Beside certmonger"
echo
echo "Machine: $(machine)"
echo

R="$SCRATCH/results"
mkdir -p "$R"
: >"$R/rows"

# --- measurements from /proc -----------------------------------------------------

# memory PID: "VmRSS RssAnon Pss Pss_Anon Threads", KiB.
memory() {
  printf '%s %s %s %s %s\n' "$(proc_field "$1" VmRSS)" "$(proc_field "$1" RssAnon)" \
    "$(awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup")" \
    "$(awk '$1 == "Pss_Anon:" { print $2 }' "/proc/$1/smaps_rollup")" \
    "$(proc_field "$1" Threads)"
}

# cpu_ms_with_children PID: CPU of the process and of its waited-for children, in ms.
cpu_ms_with_children() {
  sed -E 's/^.*\) //' "/proc/$1/stat" |
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($12 + $13 + $14 + $15) * 1000 / hz }'
}

# thread_switches PID: "TID switches" per thread, voluntary and involuntary summed.
thread_switches() {
  local t
  for t in /proc/"$1"/task/*; do
    awk -v tid="${t##*/}" '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print tid, s + 0 }' \
      "$t/status" 2>/dev/null || true
  done
}

# armed_timeout PID: the soonest timeout, in seconds, of the threads blocked in
# epoll_wait, epoll_pwait or poll (from /proc/PID/task/*/syscall), "none" when no
# thread waits with one: the kernel-side timer of an event loop.
armed_timeout() {
  local f nr a1 a2 a3 a4 a5 rest t best="" hidden=""
  for f in /proc/"$1"/task/*/syscall; do
    read -r nr a1 a2 a3 a4 a5 rest <"$f" 2>/dev/null || continue
    case $nr in
    232 | 281) t=$((a4 & 0xffffffff)) ;; # epoll_wait, epoll_pwait: int milliseconds
    7) t=$((a3 & 0xffffffff)) ;;          # poll
    23 | 270)                             # select, pselect6: a pointer, NULL for none
      ((a5 != 0)) && hidden=1
      continue
      ;;
    *) continue ;;
    esac
    ((t >= 0x80000000)) && continue # negative: no timeout
    [[ -z $best ]] || ((t < best)) && best=$t
  done
  if [[ -n $best ]]; then
    echo $(((best + 500) / 1000))
  elif [[ -n $hidden ]]; then
    echo armed # a select timeout sits behind a pointer
  else
    echo none
  fi
}

# idle PID: "CPU ticks, context switches, armed timeout" of PID over the next WINDOW
# seconds. Switches are counted per thread: a thread that exits during the window takes
# its counters with it and counts as one wakeup (its last).
idle() {
  local t0 before after
  before="$SCRATCH/switches-$1-before"
  after="$SCRATCH/switches-$1-after"
  t0=$(cpu_ticks "$1")
  thread_switches "$1" >"$before"
  sleep "$WINDOW"
  thread_switches "$1" >"$after"
  echo "$(($(cpu_ticks "$1") - t0)) $(awk '
    FNR == NR { start[$1] = $2; next }
    { seen[$1] = 1; sum += $2 - start[$1] }
    END { for (t in start) if (!(t in seen)) sum += 1; print sum }' "$before" "$after") $(armed_timeout "$1")"
}

# scan LABEL PID KEYS...: sets FOUND to "F/K" (keys found / scanned) and appends where
# they were found (kind of mapping: keys) to the notes. The scanner's table stays in
# SCRATCH.
scan() {
  local label=$1 pid=$2 out where forms
  shift 2
  out="$SCRATCH/keyscan-$pid-$SECONDS.txt"
  python3 "$BENCH_DIR/keyscan.py" --little-endian "$pid" "$@" >"$out" || [[ $? == 1 ]]
  FOUND=$(tail -1 "$out" | awk '{ print $2 "/" $4 }')
  where=$(awk 'NR > 1 && !/^found/ { print $NF }' "$out" | tr ',' '\n' | sort | uniq -c |
    awk '{ printf "%s%s: %s", (NR > 1 ? ", " : ""), $2, $1 }')
  # Occurrences by form, summed over the keys: p, d, pem, p-le, d-le.
  forms=$(awk 'NR == 1 && $1 == "key" { for (i = 2; i < NF; i++) name[i] = $i }
    NR > 1 && !/^found/ { for (i = 2; i < NF; i++) sum[i] += $i }
    END { for (i = 2; i in name; i++) printf "%s%s %d", (i > 2 ? ", " : ""), name[i], sum[i] }' "$out")
  echo "$label: $FOUND${where:+ in $where}${forms:+; occurrences: $forms}" >>"$R/where"
  log "  $label: keys found $FOUND${where:+ in $where}${forms:+; occurrences: $forms}"
}

scans_at() { [[ " $SCAN_AT " == *" $1 "* ]]; }

# row DAEMON COUNT READY_MS CPU_MS "MEMORY" "IDLE" KEYS_START KEYS_RENEWED: one line of
# 14 fields: daemon count ready cpu rss anon pss pss-anon threads ticks wakeups armed
# keys-start keys-renewed.
row() { echo "$*" >>"$R/rows"; }

# --- kyma-certd ------------------------------------------------------------------

KY="$SCRATCH/kyma-certd"
mkdir -p "$KY"

kyma_config() { # COUNT: writes and prints the path of a config with certificates 1..COUNT
  local file="$KY/config-$1.toml" i
  {
    printf '[metrics]\nlisten = "127.0.0.1:0"\n\n[defaults]\nserver_ca_file = "%s"\nkey_algorithm = "%s"\n\n' \
      "$SIM_CA" "$KEY"
    for ((i = 1; i <= $1; i++)); do
      printf '[[certificate]]\nname = "c%04d"\nprotocol = "compass"\ndir = "%s/certs/c%04d"\nconnector_url = "%s"\n\n' \
        "$i" "$KY" "$i" "$SIM_TOKEN_URL"
    done
  } >"$file"
  printf '%s\n' "$file"
}

kyma_cert_dirs() { # COUNT: every generation of certificates 1..COUNT
  local i
  for ((i = 1; i <= $1; i++)); do printf '%s/certs/c%04d\n' "$KY" "$i"; done
}

renewed_lines() { grep -c ' renewed ' "$1" || true; }

kyma_run() { # COUNT
  local n=$1 config out daemon ready_ms cpu mem idle_row keys_start=- keys_renewed=- before
  config=$(kyma_config "$n")
  out="$KY/notify-$n.out"
  log "kyma-certd with $n certificate(s)"
  spawn "$out" python3 "$BENCH_DIR/notify_ready.py" "$KY/daemon-$n.log" "$CERTD" --config "$config" run
  local runner=$LAST_PID
  ready_ms=$(wait_for_line "$out" '^ready ' 300 | awk '{print $2}')
  daemon=$(awk '/^pid / { print $2; exit }' "$out")
  cpu=$(cpu_ms_with_children "$daemon")
  sleep "$SETTLE"
  # Scraped once, as Prometheus would: what a scrape leaves behind is measured too.
  url=$(grep -m1 -o 'http://127\.0\.0\.1:[0-9]*' "$KY/daemon-$n.log")
  curl -sf -H 'Accept: application/openmetrics-text; version=1.0.0' "$url/metrics" >/dev/null
  sleep 1
  mem=$(memory "$daemon")
  idle_row=$(idle "$daemon")
  if scans_at "$n"; then
    mapfile -t dirs < <(kyma_cert_dirs "$n")
    scan "kyma-certd, $n certificates, after start" "$daemon" "${dirs[@]}"
    keys_start=$FOUND
    before=$(renewed_lines "$KY/daemon-$n.log")
    kill -USR1 "$daemon"
    local deadline=$((SECONDS + 300 + n))
    until (($(renewed_lines "$KY/daemon-$n.log") - before >= n)); do
      ((SECONDS < deadline)) || {
        log "kyma-certd did not renew $n certificates in time"
        exit 1
      }
      sleep 0.5
    done
    sleep "$SETTLE"
    scan "kyma-certd, $n certificates, after renewals" "$daemon" "${dirs[@]}"
    keys_renewed=$FOUND
  fi
  stop "$runner"
  row kyma-certd "$n" "$ready_ms" "$cpu" "$mem" "$idle_row" "$keys_start" "$keys_renewed"
}

# --- certmonger ------------------------------------------------------------------

CM="$SCRATCH/certmonger"
mkdir -p "$CM"/{ca,keys,certs,cas,tmp,config,localca}

# A session bus of our own: no service files, so nothing is started by activation.
start_bus() {
  cat >"$CM/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$CM/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
XML
  spawn "$CM/bus.out" dbus-daemon --config-file="$CM/bus.conf" --nofork --print-address=1
  BUS_ADDRESS=$(wait_for_line "$CM/bus.out" '^unix:' 30)
}

# cm_env REQUESTS_DIR: sets CM_ENV to certmonger's bus and private folders, for `env`
# (which execs, so a spawned certmonger keeps the pid that `spawn` saw).
cm_env() {
  CM_ENV=(DBUS_SESSION_BUS_ADDRESS="$BUS_ADDRESS"
    CERTMONGER_REQUESTS_DIR="$1" CERTMONGER_CAS_DIR="$CM/cas" CERTMONGER_TMPDIR="$CM/tmp"
    CERTMONGER_CONFIG_DIR="$CM/config" CERTMONGER_LOCAL_CA_DIR="$CM/localca"
    CERTMONGER_SYSTEM_LOCK_FILE="$CM/lock")
}

# monitoring REQUESTS_DIR: how many requests are in state MONITORING; fails on a
# request that the CA helper rejected.
monitoring() {
  if grep -lqE '^state=(CA_REJECTED|CA_UNREACHABLE|CA_UNCONFIGURED|NEED_GUIDANCE)$' "$1"/* 2>/dev/null; then
    log "certmonger could not get a certificate:"
    grep -hE '^(id|state|ca_error)=' "$1"/* | grep -B1 -A1 -E 'state=(CA_|NEED_GUIDANCE)' | head -20 >&2
    return 1
  fi
  { grep -lx 'state=MONITORING' "$1"/* 2>/dev/null || true; } | wc -l
}

# revisits LOG: how many requests have logged when certmonger will next look at them.
revisits() { grep -oE "Will revisit Request[0-9]+\('c[0-9]+'\)" "$1" | sort -u | wc -l; }

certmonger_enroll() {
  local dir="$CM/requests-all" i count
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CM/ca/ca.key" -out "$CM/ca/ca.pem" \
    -days 365 -subj "/CN=certmonger bench CA" 2>/dev/null
  log "writing $MAX $KEY keys for certmonger"
  "$RELEASE/examples/keyfiles" "$KEY" "$MAX" "$CM/keys" >/dev/null
  cm_env "$dir"
  spawn "$CM/enroll.log" env "${CM_ENV[@]}" certmonger -s -n
  local pid=$LAST_PID
  local deadline=$((SECONDS + 60))
  until env "${CM_ENV[@]}" getcert add-ca -s -c bench -e "$BENCH_DIR/certmonger-ca-helper $CM/ca" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || {
      log "certmonger did not come up on its bus"
      exit 1
    }
    sleep 0.2
  done
  log "requesting $MAX certificates from certmonger"
  for ((i = 1; i <= MAX; i++)); do printf 'c%04d\n' "$i"; done |
    xargs -P 4 -I{} env DBUS_SESSION_BUS_ADDRESS="$BUS_ADDRESS" getcert request -s -c bench \
      -k "$CM/keys/{}.key" -f "$CM/certs/{}.pem" -N "CN={}" -I "{}" >/dev/null ||
    { log "getcert request failed"; exit 1; }
  deadline=$((SECONDS + 600 + MAX))
  count=0
  while ((count < MAX)); do
    ((SECONDS < deadline)) || {
      log "certmonger issued $count of $MAX certificates in time"
      exit 1
    }
    sleep 1
    count=$(monitoring "$dir") || exit 1
  done
  stop "$pid"
}

# requests_for COUNT: a requests folder with the saved requests c0001..cCOUNT.
requests_for() {
  local dir="$CM/requests-$1" f id
  rm -rf "$dir"
  mkdir -p "$dir"
  for f in "$CM/requests-all"/*; do
    id=$(sed -n 's/^id=c//p' "$f")
    ((10#$id <= $1)) && cp "$f" "$dir/"
  done
  printf '%s\n' "$dir"
}

certmonger_keys() { # COUNT
  local i
  for ((i = 1; i <= $1; i++)); do printf '%s/keys/c%04d.key\n' "$CM" "$i"; done
}

certmonger_run() { # COUNT
  local n=$1 dir logf pid a b ready_ms cpu mem idle_row keys_start=- keys_renewed=-
  dir=$(requests_for "$n")
  logf="$CM/daemon-$n.log"
  log "certmonger with $n certificate(s)"
  a=$(us)
  cm_env "$dir"
  spawn "$logf" env "${CM_ENV[@]}" certmonger -s -n -d 3
  pid=$LAST_PID
  local deadline=$((SECONDS + 300 + n))
  until (($(revisits "$logf") >= n)); do
    ((SECONDS < deadline)) || {
      log "certmonger did not reach MONITORING for $n requests in time"
      exit 1
    }
    sleep 0.05
  done
  b=$(us)
  ready_ms=$(elapsed_ms "$a" "$b")
  cpu=$(cpu_ms_with_children "$pid")
  grep -oE "Will revisit Request[0-9]+\('c[0-9]+'\) in [0-9]+ seconds" "$logf" |
    awk '{ print $(NF - 1) }' | sort -n | uniq -c >"$R/certmonger-revisit-$n"
  sleep "$SETTLE"
  mem=$(memory "$pid")
  idle_row=$(idle "$pid")
  if scans_at "$n"; then
    mapfile -t keys < <(certmonger_keys "$n")
    scan "certmonger, $n certificates, after start" "$pid" "${keys[@]}"
    keys_start=$FOUND
    touch "$CM/renew-mark-$n"
    sleep 1 # the certificates' mtimes must be later than the mark
    for ((i = 1; i <= n; i++)); do printf 'c%04d\n' "$i"; done |
      xargs -P 4 -I{} env DBUS_SESSION_BUS_ADDRESS="$BUS_ADDRESS" getcert resubmit -s -i "{}" >/dev/null ||
      { log "getcert resubmit failed"; exit 1; }
    deadline=$((SECONDS + 600 + n))
    local fresh=0 count=0
    until ((fresh >= n && count >= n)); do
      ((SECONDS < deadline)) || {
        log "certmonger renewed $fresh of $n certificates in time"
        exit 1
      }
      sleep 0.5
      fresh=$(find "$CM/certs" -name 'c*.pem' -newer "$CM/renew-mark-$n" | wc -l)
      count=$(monitoring "$dir") || exit 1
    done
    sleep "$SETTLE"
    scan "certmonger, $n certificates, after renewals" "$pid" "${keys[@]}"
    keys_renewed=$FOUND
  fi
  stop "$pid"
  row "certmonger" "$n" "$ready_ms" "$cpu" "$mem" "$idle_row" "$keys_start" "$keys_renewed"
}

# --- the run ---------------------------------------------------------------------

start_sim --validity 90d --token-ttl 1h
log "enrolling $MAX certificates in kyma-certd"
"$RELEASE/examples/enroll_many" "$(kyma_config "$MAX")" "$SIM_ADMIN" 8 >/dev/null
if runs certmonger; then
  start_bus
  certmonger_enroll
fi

for n in $COUNTS; do
  if runs kyma-certd; then kyma_run "$n"; fi
  if runs certmonger; then certmonger_run "$n"; fi
done

# --- tables ----------------------------------------------------------------------

echo "Both daemons track the same number of RSA 2048 certificates valid for 90 days, one"
echo "after the other, in one run. kyma-certd: the packaged build, metrics on (scraped once"
echo "before its memory is read), against the connector simulator; ready at its READY=1."
echo "certmonger $CM_VERSION: foreground on a private session bus, an external CA helper"
echo "signing with \`openssl x509 -req\`; ready"
echo "when every request is back in MONITORING (debug level 3 logs it). Memory in KiB from"
echo "\`/proc/PID/status\` (VmRSS, RssAnon) and \`smaps_rollup\` (PSS, its anonymous part),"
echo "${SETTLE} s after ready; then ${WINDOW} s idle: CPU ticks (10 ms) and context switches"
echo "of all threads (wakeups), and the timeout of the event loop's wait at its end (the"
echo "kernel-side timer: \`/proc/PID/task/*/syscall\`). CPU to ready includes waited-for child"
echo "processes (certmonger reads every key and certificate in a child)."
echo
echo "| daemon | certificates | ready after (ms) | CPU to ready (ms) | VmRSS | RssAnon | PSS | PSS anon | threads | idle CPU ticks / wakeups in ${WINDOW} s | next wakeup armed (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
sort -k2,2n -k1,1 "$R/rows" | while read -r d n ready cpu rss anon pss pssanon threads ticks wakeups armed _ _; do
  printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n' \
    "$d" "$n" "$ready" "$cpu" "$rss" "$anon" "$pss" "$pssanon" "$threads" "$ticks" "$wakeups" "$armed"
done
echo
echo "Per tracked certificate, between $MIN and $MAX certificates (KiB):"
echo
echo "| daemon | RssAnon per certificate | PSS per certificate | VmRSS per certificate |"
echo "|---|---:|---:|---:|"
for d in certmonger kyma-certd; do
  awk -v d="$d" -v lo="$MIN" -v hi="$MAX" '
    $1 == d && $2 == lo { r0 = $5; a0 = $6; p0 = $7 }
    $1 == d && $2 == hi { r1 = $5; a1 = $6; p1 = $7 }
    END { k = hi - lo; printf "| %s | %.1f | %.1f | %.1f |\n", d, (a1 - a0) / k, (p1 - p0) / k, (r1 - r0) / k }' "$R/rows"
done
echo
echo "Private keys found in the daemon's memory by \`bench/keyscan.py\` (prime p, private"
echo "exponent d in both byte orders, base64 lines of the PEM), as found / keys scanned: every"
echo "key on disk for those certificates, kyma-certd's previous generation included (the"
echo "certificates renewed at a smaller count have one). Renewals: SIGUSR1 to kyma-certd, which"
echo "makes new keys; \`getcert resubmit\` for certmonger, which keeps them."
echo
echo "| daemon | certificates | keys found after start | after a round of renewals |"
echo "|---|---:|---:|---:|"
sort -k2,2n -k1,1 "$R/rows" | awk '$13 != "-" { printf "| %s | %s | %s | %s |\n", $1, $2, $13, $14 }'
echo
if [[ -s $R/where ]]; then
  echo "Where the scanner found them (kind of mapping: keys) and in which form (occurrences):"
  echo
  sed 's/^/- /' "$R/where"
  echo
fi
revisit=$(awk '{ printf "%s%s s (%s requests)", (NR > 1 ? ", " : ""), $2, $1 }' "$R/certmonger-revisit-$MAX" 2>/dev/null || echo "(not run)")
echo "Timers: certmonger logged its next look at each of the $MAX requests after $revisit;"
echo "kyma-certd's tasks sleep until their next deadline (a clock step or a resume makes them"
echo "recompute; see src/daemon/clock.rs), so the event loop's armed timeout above is the next"
echo "renewal, capped by epoll at about 24.8 days (2,147,484 s): no wakeup in between, whatever"
echo "the number of certificates."
echo
# field DAEMON COUNT COLUMN: one value of the rows.
field() { awk -v d="$1" -v n="$2" -v c="$3" '$1 == d && $2 == n { print $c }' "$R/rows"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
ky_per=$(awk -v lo="$(field kyma-certd "$MIN" 6)" -v hi="$(field kyma-certd "$MAX" 6)" -v k=$((MAX - MIN)) 'BEGIN { printf "%.1f", (hi - lo) / k }')
cm_per=$(awk -v lo="$(field certmonger "$MIN" 6)" -v hi="$(field certmonger "$MAX" 6)" -v k=$((MAX - MIN)) 'BEGIN { printf "%.1f", (hi - lo) / k }')
ky_anon=$(field kyma-certd "$MIN" 6)
ky_rss=$(field kyma-certd "$MIN" 5)
cm_rss=$(field certmonger "$MIN" 5)
ky_wake=$(field kyma-certd "$MAX" 11)
ky_keys=$(awk '$1 == "kyma-certd" && $13 != "-" { split($13, a, "/"); split($14, b, "/"); s += a[1] + b[1] } END { print s + 0 }' "$R/rows")
echo "Targets for kyma-certd beside certmonger:"
echo
echo "- anonymous memory per certificate ≤ 6 KiB and at most half of certmonger's ($cm_per): $(verdict "$ky_per <= 6 && $ky_per <= $cm_per / 2") ($ky_per KiB)"
echo "- idle with $MIN certificate: RssAnon under 1 MiB, VmRSS under certmonger's ($cm_rss KiB): $(verdict "$ky_anon < 1024 && $ky_rss < $cm_rss") ($ky_anon and $ky_rss KiB)"
echo "- no wakeup of an idle daemon with $MAX certificates in the window: $(verdict "$ky_wake == 0") ($ky_wake in ${WINDOW} s)"
echo "- no private key material in memory after the start or after renewals: $(verdict "$ky_keys == 0") ($ky_keys keys found in all scans)"
