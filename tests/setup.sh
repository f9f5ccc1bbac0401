#!/usr/bin/env bash
# Installs what the tests need on a Debian machine that has only the Rust toolchain:
# the Debian packages in tests/debian-packages.txt (through sudo when not root), the
# rustfmt and clippy components, the musl target, cargo-deb, and kubernetes-validate in
# a virtualenv under target/tools/. Installs only what is missing; safe to rerun.
#
# Usage: tests/setup.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
die() {
    echo "setup.sh: $*" >&2
    exit 1
}
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -- "$@"
    else
        die "installing Debian packages needs root: run as root or install sudo"
    fi
}

step "Debian packages (tests/debian-packages.txt)"
command -v dpkg-query >/dev/null || die "this is not a Debian machine; install the packages in tests/debian-packages.txt by hand"
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' tests/debian-packages.txt)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "all ${#packages[@]} installed" >&2
fi

step "Rust components and targets"
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
if command -v rustup >/dev/null; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
    rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
        rustup target add x86_64-unknown-linux-musl >&2
fi
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet

step "kubernetes-validate (target/tools/venv)"
venv=target/tools/venv
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
echo "kubernetes-validate $("$venv/bin/kubernetes-validate" --version)" >&2
