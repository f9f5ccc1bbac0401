#!/usr/bin/env bash
# Checks the systemd files: `systemd-analyze verify` must print nothing, the
# `systemd-analyze security` exposure level must be at most 2.0, and the
# sysusers.d / tmpfiles.d snippets must apply cleanly to an empty root.
# Works without systemd as PID 1. Run from anywhere: ./systemd/check.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

unit=systemd/kyma-certd.service
# systemd-analyze security scores 0-100 internally; 20 is the 2.0 shown.
max_exposure=20

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
    command -v "$tool" >/dev/null || { echo "check.sh: $tool is not installed" >&2; exit 2; }
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# A throw-away file system root holding the unit, systemd's own units (for
# dependencies such as sysinit.target) and stub executables at the paths the
# unit names, so that verify works without installing anything.
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd/system" "$root/etc" \
    "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
ln -s usr/bin "$root/bin"
cp -r /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
cp "$unit" "$root/usr/lib/systemd/system/kyma-certd.service"
for exe in /usr/bin/kyma-certd /bin/kill; do
    printf '#!/bin/sh\nexit 0\n' >"$root$exe"
    chmod 0755 "$root$exe"
done

echo "== systemd-analyze verify $unit"
# The man page is installed by the package, not present in the repository.
verify_out=$(systemd-analyze verify --man=no --root="$root" kyma-certd.service 2>&1) || {
    printf '%s\n' "$verify_out"
    echo "FAIL: systemd-analyze verify failed" >&2
    exit 1
}
if [ -n "$verify_out" ]; then
    printf '%s\n' "$verify_out"
    echo "FAIL: systemd-analyze verify printed warnings" >&2
    exit 1
fi
echo "ok: no warnings"

echo "== systemd-analyze security --offline=yes $unit"
status=0
security_out=$(systemd-analyze security --offline=yes --threshold="$max_exposure" "$unit" 2>&1) || status=$?
printf '%s\n' "$security_out" | grep -E '✗' || true
score=$(printf '%s\n' "$security_out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    printf '%s\n' "$security_out"
    echo "FAIL: no exposure level in the output" >&2
    exit 1
fi
echo "exposure level: $score (at most 2.0 allowed)"
if [ "$status" -ne 0 ]; then
    echo "FAIL: exposure level $score is above 2.0" >&2
    exit 1
fi

echo "== sysusers.d and tmpfiles.d snippets"
cp /etc/passwd /etc/group "$root/etc/"
cp systemd/kyma-certd.sysusers "$root/usr/lib/sysusers.d/kyma-certd.conf"
cp systemd/kyma-certd.tmpfiles "$root/usr/lib/tmpfiles.d/kyma-certd.conf"
systemd-sysusers --root="$root" kyma-certd.conf
grep -q '^kyma-certd:' "$root/etc/passwd" || { echo "FAIL: sysusers created no kyma-certd user" >&2; exit 1; }
systemd-tmpfiles --root="$root" --create kyma-certd.conf
# stat would name the owner from the host's passwd: compare the numeric uid.
uid=$(awk -F: '$1 == "kyma-certd" { print $3 }' "$root/etc/passwd")
state=$(stat -c '%a %u' "$root/var/lib/kyma-certd")
if [ "$state" != "750 $uid" ]; then
    echo "FAIL: /var/lib/kyma-certd is '$state' (mode uid), want mode 750 owned by kyma-certd" >&2
    exit 1
fi
echo "ok: user kyma-certd (uid $uid), /var/lib/kyma-certd mode 750"

echo "PASS"
