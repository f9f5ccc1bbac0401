#!/usr/bin/env bash
# Installs a kyma-certd .deb on this machine, checks what it installed, then
# purges it. Needs root and must not be run where kyma-certd is already
# installed for real (the purge deletes /var/lib/kyma-certd).
#
# Usage: packaging/deb/check.sh target/debian/kyma-certd_<version>_<arch>.deb
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: packaging/deb/check.sh PACKAGE.deb" >&2
    exit 2
fi
deb=$1
if [ "$(id -u)" -ne 0 ]; then
    echo "check.sh: dpkg -i needs root" >&2
    exit 2
fi
if dpkg-query -W -f='${Status}' kyma-certd 2>/dev/null | grep -q 'installed'; then
    echo "check.sh: kyma-certd is already installed here; refusing to purge it" >&2
    exit 2
fi

failures=0
pass() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
# expect_mode PATH MODE OWNER:GROUP
expect_mode() {
    local got
    got=$(stat -c '%a %U:%G' "$1" 2>/dev/null || echo "missing")
    if [ "$got" = "$2 $3" ]; then pass "$1 is $2 $3"; else fail "$1 is '$got', want '$2 $3'"; fi
}
# expect_file PATH
expect_file() {
    if [ -s "$1" ]; then pass "$1 installed"; else fail "$1 is missing or empty"; fi
}

# A system user created by the package outlives a purge (as Debian does); when
# this check created it, it removes it again.
user_existed=0
getent passwd kyma-certd >/dev/null && user_existed=1
cleanup() {
    dpkg --purge kyma-certd >/dev/null 2>&1 || true
    if [ "$user_existed" -eq 0 ] && getent passwd kyma-certd >/dev/null; then
        userdel kyma-certd
        if getent group kyma-certd >/dev/null; then groupdel kyma-certd; fi
    fi
}
trap cleanup EXIT

echo "== dpkg -i $deb"
dpkg -i "$deb"

echo "== the binary"
upstream=$(dpkg-deb -f "$deb" Version)
upstream=${upstream%-*}
if version=$(kyma-certd --version 2>&1) && grep -qF "$upstream" <<<"$version"; then
    pass "kyma-certd --version: $version"
else
    fail "kyma-certd --version does not name version $upstream: $version"
fi
# Built with the simulator, the demo would run for a second and exit 0.
if timeout 60 kyma-certd demo --duration 1s >/dev/null 2>&1; then
    fail "kyma-certd demo runs: the package must be built with --no-default-features"
else
    pass "the packaged binary has no demo (built without default features)"
fi
# As the service user, like the unit runs it.
if out=$(runuser -u kyma-certd -- kyma-certd --config /etc/kyma-certd/config.toml check-config 2>&1); then
    pass "check-config (as kyma-certd) accepts the packaged configuration"
    if grep -q 'no certificates configured' <<<"$out"; then
        pass "check-config says the packaged configuration has no certificates"
    else
        fail "check-config does not say 'no certificates configured':"$'\n'"$out"
    fi
else
    fail "check-config rejects the packaged configuration:"$'\n'"$out"
fi
if out=$(runuser -u kyma-certd -- kyma-certd --config /usr/share/doc/kyma-certd/examples/config.toml check-config 2>&1); then
    pass "check-config accepts the full example installed beside the docs"
else
    fail "check-config rejects the full example:"$'\n'"$out"
fi

echo "== files, owners and modes"
expect_mode /usr/bin/kyma-certd 755 root:root
expect_mode /etc/kyma-certd/config.toml 640 root:kyma-certd
expect_mode /usr/lib/systemd/system/kyma-certd.service 644 root:root
expect_mode /var/lib/kyma-certd 750 kyma-certd:kyma-certd
if grep -qx /etc/kyma-certd/config.toml /var/lib/dpkg/info/kyma-certd.conffiles; then
    pass "/etc/kyma-certd/config.toml is a conffile"
else
    fail "/etc/kyma-certd/config.toml is not a conffile"
fi
for f in /usr/lib/sysusers.d/kyma-certd.conf /usr/lib/tmpfiles.d/kyma-certd.conf \
    /usr/share/man/man1/kyma-certd.1.gz /usr/share/bash-completion/completions/kyma-certd \
    /usr/share/zsh/vendor-completions/_kyma-certd /usr/share/fish/vendor_completions.d/kyma-certd.fish \
    /usr/share/doc/kyma-certd/README.md /usr/share/doc/kyma-certd/operations.md \
    /usr/share/doc/kyma-certd/reference.md \
    /usr/share/doc/kyma-certd/examples/config.toml \
    /usr/share/polkit-1/rules.d/50-kyma-certd.rules \
    /usr/share/doc/kyma-certd/examples/signal-other-users.conf; do
    expect_file "$f"
done
if gzip -dc /usr/share/man/man1/kyma-certd.1.gz | grep -q '^\.TH'; then
    pass "the man page is roff"
else
    fail "the man page has no .TH header"
fi

echo "== user and service"
if getent passwd kyma-certd >/dev/null && getent group kyma-certd >/dev/null; then
    pass "user and group kyma-certd exist"
else
    fail "user or group kyma-certd is missing"
fi
shell=$(getent passwd kyma-certd | cut -d: -f7)
case "$shell" in
*/nologin | */false) pass "kyma-certd has no login shell ($shell)" ;;
*) fail "kyma-certd has login shell '$shell'" ;;
esac
if [ -L /etc/systemd/system/multi-user.target.wants/kyma-certd.service ]; then
    pass "the service is enabled"
else
    fail "the service is not enabled"
fi
if [ -d /run/systemd/system ] && systemctl is-active --quiet kyma-certd.service; then
    fail "the service was started by the installation"
fi
if runuser -u kyma-certd -- test -r /etc/kyma-certd/config.toml; then
    pass "the kyma-certd user can read the configuration"
else
    fail "the kyma-certd user cannot read the configuration"
fi

echo "== reinstall (the upgrade path)"
dpkg -i "$deb" >/dev/null
expect_mode /etc/kyma-certd/config.toml 640 root:kyma-certd

echo "== an upgrade over a configuration the new release refuses fails loudly"
cp -p /etc/kyma-certd/config.toml /etc/kyma-certd/config.toml.check-sh
printf '\n[daemon]\nfuture_key = 1\n' >>/etc/kyma-certd/config.toml
if out=$(dpkg -i "$deb" 2>&1); then
    fail "the upgrade went through with an invalid configuration"
elif grep -q 'future_key' <<<"$out" && grep -q 'dpkg --configure -a' <<<"$out"; then
    pass "the upgrade failed, naming the problem and the way out"
else
    fail "the failed upgrade does not name the problem and the way out:"$'\n'"$out"
fi
mv /etc/kyma-certd/config.toml.check-sh /etc/kyma-certd/config.toml
if dpkg --configure -a >/dev/null 2>&1 && dpkg-query -W -f='${Status}' kyma-certd | grep -q 'ok installed'; then
    pass "after the fix, dpkg --configure -a completes the upgrade"
else
    fail "dpkg --configure -a does not complete the upgrade: $(dpkg-query -W -f='${Status}' kyma-certd)"
fi

echo "== dpkg -r and --purge"
dpkg -r kyma-certd >/dev/null
if [ -e /usr/bin/kyma-certd ]; then fail "dpkg -r left /usr/bin/kyma-certd"; else pass "dpkg -r removed the binary"; fi
if [ -f /etc/kyma-certd/config.toml ]; then pass "dpkg -r kept the configuration"; else fail "dpkg -r removed the configuration"; fi
dpkg --purge kyma-certd >/dev/null
for gone in /etc/kyma-certd /var/lib/kyma-certd /etc/systemd/system/multi-user.target.wants/kyma-certd.service; do
    if [ -e "$gone" ] || [ -L "$gone" ]; then fail "purge left $gone"; else pass "purge removed $gone"; fi
done
if dpkg-statoverride --list /etc/kyma-certd/config.toml >/dev/null 2>&1; then
    fail "purge left the statoverride of /etc/kyma-certd/config.toml"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "PASS"
