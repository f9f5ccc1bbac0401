#!/bin/bash
# The booted-systemd test, inside the container (tests/host/systemd.sh boots it and runs
# this as a oneshot unit). Installs the package, follows the README with its minimal
# configuration (check-config, enroll as the service user, start the shipped unit
# unchanged, `status` as a member of the group) and checks readiness, renewals in the
# sandbox, an upgrade that refuses an invalid configuration, reload, every hook type
# against the root-owned nginx, the documented CAP_KILL step and the watchdog.
# Writes PASS or the first failure to /share/result; everything it did to /share/inside.log.
set -uo pipefail
exec >/share/inside.log 2>&1

# shellcheck source=/dev/null
source /share/env # METRICS_PORT
config=/etc/kyma-certd/config.toml
name=orders
started=$SECONDS

finish() {
  journalctl -b --no-pager -o short-monotonic >/share/journal.txt 2>&1
  printf '%s\n' "$1" >/share/result
}
fail() {
  echo "FAIL: $*"
  echo "--- systemctl status kyma-certd"
  systemctl status --no-pager kyma-certd
  finish "FAIL: $*"
  exit 1
}
ok() { echo "ok [$((SECONDS - started))s]: $*"; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out waiting for: $what"
    sleep 0.2
  done
}

# metric SERIES: the value of one series on /metrics, 0 when it is absent.
metric() {
  curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v s="$1" '$1 == s { v = $2 } END { print v + 0 }'
}
at_least() { [ "$(metric "$1")" -ge "$2" ] 2>/dev/null; }
renewals() { metric "kyma_certd_renewals_total{name=\"$name\",result=\"success\"}"; }
hook_runs() { metric "kyma_certd_hook_runs_total{name=\"$name\",hook=\"$1\",result=\"$2\"}"; }
main_pid() { systemctl show -p MainPID --value kyma-certd; }
prop() { systemctl show -p "$1" --value kyma-certd; }

# nginx's worker PIDs: the master (root) replaces every worker on a reload or SIGHUP.
workers() { pgrep -P "$(cat /run/nginx.pid)" | sort -n | tr '\n' ' '; }
# workers_replaced OLD: no worker of OLD is left, and there are new ones.
workers_replaced() {
  local now pid
  now=$(workers)
  [ -n "$now" ] || return 1
  for pid in $1; do
    case " $now " in *" $pid "*) return 1 ;; esac
  done
}

# use_hook TOML: the configuration (the README's, without its hook) with this one
# on_renew hook.
use_hook() {
  {
    cat /share/base.toml
    printf '\n[[certificate.on_renew]]\n%s\n' "$1"
  } >"$config"
}

# reload_config: systemctl reload, then wait for the daemon to count the reload.
reload_config() {
  local before
  before=$(metric 'kyma_certd_config_reloads_total{result="success"}')
  systemctl reload kyma-certd || fail "systemctl reload kyma-certd failed"
  wait_until 30 "the reload to be applied" at_least 'kyma_certd_config_reloads_total{result="success"}' $((before + 1))
}

# renew_now_and_expect HOOK DESCRIPTION: SIGUSR1, then the hook of that kind succeeds and
# every nginx worker is replaced.
renew_now_and_expect() {
  local kind=$1 old runs done_renewals
  old=$(workers)
  runs=$(hook_runs "$kind" success)
  done_renewals=$(renewals)
  kill -USR1 "$(main_pid)"
  wait_until 60 "a renewal after SIGUSR1" at_least "kyma_certd_renewals_total{name=\"$name\",result=\"success\"}" $((done_renewals + 1))
  wait_until 30 "the $kind hook to succeed" at_least "kyma_certd_hook_runs_total{name=\"$name\",hook=\"$kind\",result=\"success\"}" $((runs + 1))
  wait_until 30 "nginx's workers to be replaced by the $kind hook (were: $old)" workers_replaced "$old"
  ok "$kind hook: renewal, hook success, nginx workers $old-> $(workers)"
}

# highest_thread_nice PID: the highest nice value among the process's threads.
highest_thread_nice() {
  local stat max=-20 nice
  for stat in /proc/"$1"/task/*/stat; do
    nice=$(sed -E 's/^.*\) //' "$stat" 2>/dev/null | awk '{ print $17 }')
    [ -n "$nice" ] && [ "$nice" -gt "$max" ] && max=$nice
  done
  echo "$max"
}

echo "== install"
wait_until 60 "nginx to run" systemctl is-active --quiet nginx.service
dpkg -i /share/kyma-certd.deb || fail "dpkg -i failed"
systemctl is-enabled --quiet kyma-certd || fail "the service is not enabled after installation"
systemctl is-active --quiet kyma-certd && fail "the installation started the service"
[ -s /usr/share/polkit-1/rules.d/50-kyma-certd.rules ] || fail "the polkit rule is not installed"
checked=$(runuser -u kyma-certd -- kyma-certd check-config 2>&1) || fail "check-config rejects the packaged configuration: $checked"
grep -q 'no certificates configured' <<<"$checked" || fail "check-config does not say 'no certificates configured': $checked"
ok "package installed; service enabled, not started; check-config: no certificates configured"

echo "== the README: its minimal configuration, check-config, enroll as the service user"
install -m 0644 /share/connector-ca.pem /etc/kyma-certd/connector-ca.pem
install -m 0640 -g kyma-certd /share/config.toml "$config"
runuser -u kyma-certd -- kyma-certd check-config >/dev/null || fail "check-config rejects the README's example"
runuser -u kyma-certd -- kyma-certd enroll --name "$name" --token-file - </share/token ||
  fail "enroll as kyma-certd failed"
[ "$(stat -L -c '%U %a' /var/lib/kyma-certd/$name/key.pem)" = "kyma-certd 600" ] ||
  fail "key.pem is $(stat -L -c '%U %a' /var/lib/kyma-certd/$name/key.pem)"
ok "enrolled"

echo "== start: READY and STATUS"
# Type=notify: start returns only after READY=1 (or fails at TimeoutStartSec).
timeout 60 systemctl start kyma-certd || fail "systemctl start kyma-certd failed"
[ "$(prop ActiveState)/$(prop SubState)" = "active/running" ] || fail "state $(prop ActiveState)/$(prop SubState)"
status_text=$(prop StatusText)
case "$status_text" in
"1 certificate, next renewal $name in"*) ok "READY; STATUS=$status_text" ;;
*) fail "unexpected STATUS=: '$status_text'" ;;
esac

echo "== status as a member of the kyma-certd group, and as someone who is not"
useradd --no-create-home --groups kyma-certd certreader || fail "useradd certreader failed"
useradd --no-create-home certstranger || fail "useradd certstranger failed"
shown=$(runuser -u certreader -- kyma-certd status 2>&1) || fail "status as a member of kyma-certd failed: $shown"
grep -q "^$name .* valid " <<<"$shown" || fail "status as a member does not show $name valid: $shown"
ok "status as a member of group kyma-certd: $name valid"
refused=0
said=$(runuser -u certstranger -- kyma-certd status 2>&1) || refused=$?
[ "$refused" -eq 2 ] || fail "status as a non-member exited $refused, want 2: $said"
grep -q "$config is mode 0640, owner root, group kyma-certd, and user certstranger is not in group kyma-certd" <<<"$said" ||
  fail "status as a non-member does not name the missing permission: $said"
ok "status as a non-member names the missing permission"

echo "== a scheduled renewal in the sandbox, the README's systemd_unit hook to root's nginx"
old=$(workers)
wait_until 90 "the first scheduled renewal" at_least "kyma_certd_renewals_total{name=\"$name\",result=\"success\"}" 1
nice=$(highest_thread_nice "$(main_pid)")
wait_until 30 "the systemd hook to succeed" at_least "kyma_certd_hook_runs_total{name=\"$name\",hook=\"systemd\",result=\"success\"}" 1
wait_until 30 "nginx's workers to be replaced (were: $old)" workers_replaced "$old"
ok "systemd_unit hook: nginx workers $old-> $(workers)"
# The blocking threads (key generation) renice themselves: setpriority is allowed.
[ "$nice" -ge 10 ] || fail "no thread of the daemon runs at nice 10 after a renewal (highest: $nice): setpriority was refused"
ok "the key generation thread ran at nice $nice (setpriority allowed)"

echo "== upgrade: the configuration is checked with the new binary before the restart"
pid=$(main_pid)
printf '\n[daemon]\nfuture_key = 1\n' >>"$config"
if dpkg -i /share/kyma-certd.deb >/share/upgrade.log 2>&1; then
  fail "the upgrade went through with an invalid configuration"
fi
grep -q 'future_key' /share/upgrade.log || fail "the failed upgrade does not name the problem: $(cat /share/upgrade.log)"
[ "$(main_pid)" = "$pid" ] && running_now=1 || running_now=0
[ "$running_now" = 1 ] || fail "the failed upgrade stopped or restarted the daemon"
ok "an upgrade over an invalid configuration fails loudly and leaves the daemon running"
install -m 0640 -g kyma-certd /share/config.toml "$config"
dpkg --configure -a || fail "dpkg --configure -a failed after fixing the configuration"
wait_until 60 "the daemon to run again after the upgrade" systemctl is-active --quiet kyma-certd
[ "$(main_pid)" != "$pid" ] || fail "the upgrade did not restart the daemon"
ok "after the fix, dpkg --configure -a restarts the daemon (pid $pid -> $(main_pid))"

echo "== reload, then a command hook"
use_hook 'command = ["systemctl", "--no-ask-password", "reload", "nginx.service"]'
reload_config
ok "systemctl reload kyma-certd applied the new configuration"
renew_now_and_expect command

echo "== the journal has no sandbox denials"
# The daemon's unit (with PID 1's messages about it) and its peers.
denials=$(journalctl -b --no-pager -o cat -u kyma-certd -u polkit -u nginx |
  grep -Ei 'denied|not permitted|interactive authentication|only permitted for main PID|seccomp|audit' || true)
[ -z "$denials" ] || fail "denials in the journal: $denials"
ok "no denial in the journal"

echo "== the polkit rule allows reload and try-restart, nothing wider"
# After the journal check: polkit logs these refusals.
for verb in stop start restart; do
  if runuser -u kyma-certd -- systemctl --no-ask-password "$verb" nginx.service 2>/dev/null; then
    fail "kyma-certd may '$verb' nginx.service: the polkit rule is too wide"
  fi
done
systemctl is-active --quiet nginx.service || fail "nginx is no longer running"
ok "kyma-certd may not stop, start or restart units"

echo "== signal hook to root's nginx: refused without CAP_KILL, works after the documented step"
use_hook $'signal = "HUP"\npid_file = "/run/nginx.pid"'
reload_config
failures=$(hook_runs signal failure)
kill -USR1 "$(main_pid)"
wait_until 60 "the signal hook to fail" at_least "kyma_certd_hook_runs_total{name=\"$name\",hook=\"signal\",result=\"failure\"}" $((failures + 1))
journalctl -b -u kyma-certd -o cat | grep -q 'cannot send SIGHUP.*Operation not permitted' ||
  fail "the refused signal is not logged as EPERM"
ok "without CAP_KILL the signal is refused (EPERM), as documented"
# The step from docs/operations.md, "Signal hooks to processes of other users".
install -D -m 0644 /usr/share/doc/kyma-certd/examples/signal-other-users.conf \
  /etc/systemd/system/kyma-certd.service.d/signal-other-users.conf
systemctl daemon-reload
timeout 60 systemctl restart kyma-certd || fail "restart with the CAP_KILL drop-in failed"
caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$(main_pid)/status")
[ "$caps" = "0000000000000020" ] || fail "with the drop-in the daemon has capabilities $caps, want only CAP_KILL (0x20)"
ok "with the drop-in the daemon holds CAP_KILL only (CapEff $caps)"
renew_now_and_expect signal

echo "== watchdog: a hung daemon is restarted"
# Last: the certificates (30 s) expire while the daemon hangs.
pid=$(main_pid)
restarts=$(prop NRestarts)
kill -STOP "$pid"
watchdog_started=$SECONDS
restarted() { [ "$(prop NRestarts)" -gt "$restarts" ]; }
running() { [ "$(prop ActiveState)/$(prop SubState)" = "active/running" ]; }
# WatchdogSec=60s of the shipped unit, then RestartSec=10s.
wait_until 150 "a restart after the watchdog timeout" restarted
wait_until 60 "the restarted daemon to be ready" running
[ "$(main_pid)" != "$pid" ] || fail "the main PID did not change"
journalctl -b -u kyma-certd -o cat | grep -q 'Watchdog timeout' || fail "no watchdog timeout in the journal"
ok "watchdog restarted the stopped daemon after $((SECONDS - watchdog_started))s (pid $pid -> $(main_pid))"

finish PASS
echo "PASS"
