#!/usr/bin/env bash
# Prints the path of a Debian 12 tree that boots with systemd (made by debootstrap on the
# first call, then reused): systemd, D-Bus, logind, polkit and nginx, the peers of the
# booted-systemd test. The tree is a cache under target/host-tests/; a change of the
# package list below makes a new one. Needs root (or sudo) and debootstrap.
#
# Usage: tests/host/debian-tree.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# libpam-systemd: polkitd needs a logind, and debootstrap does not pick one by itself.
packages=systemd,systemd-sysv,dbus,libpam-systemd,polkitd,nginx,curl,procps,ca-certificates
suite=bookworm

# The machine's own Debian mirror when it names one, else the default.
mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /^\[/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

key=$(printf '%s %s' "$suite" "$packages" | sha256sum | cut -c1-12)
tree="$CACHE/debian-$suite-$key"
if [ -f "$tree/.complete" ]; then
  printf '%s\n' "$tree"
  exit 0
fi

need debootstrap
log "debootstrap $suite into $tree (about two minutes, once)"
as_root rm -rf "$tree" "$tree.partial"
mkdir -p "$CACHE"
as_root debootstrap --variant=minbase --include="$packages" "$suite" "$tree.partial" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 ||
  die "debootstrap failed; its log is $CACHE/debootstrap.log"
# A machine id of its own, and no getty competing for the console.
as_root rm -f "$tree.partial/etc/machine-id"
as_root systemd-machine-id-setup --root="$tree.partial" >/dev/null
as_root rm -f "$tree.partial/etc/systemd/system/getty.target.wants/getty@tty1.service"
as_root mv "$tree.partial" "$tree"
as_root touch "$tree/.complete"
printf '%s\n' "$tree"
