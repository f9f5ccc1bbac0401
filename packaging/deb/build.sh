#!/usr/bin/env bash
# Builds the Debian package: the release binary without default features (no
# connector simulator), its man page and shell completions, then `cargo deb
# --no-build`. Prints the path of the .deb on the last line.
#
# Installs nothing: needs cargo-deb (`cargo install cargo-deb`).
#
# Usage: packaging/deb/build.sh [--no-build]
#   --no-build  package the binary already in the target directory
#               (built beforehand with `cargo build --release --no-default-features`)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

build=1
case "${1:-}" in
"") ;;
--no-build) build=0 ;;
*)
    echo "usage: packaging/deb/build.sh [--no-build]" >&2
    exit 2
    ;;
esac

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build.sh: cargo-deb is not installed; run: cargo install cargo-deb" >&2
    exit 2
fi

if [ "$build" -eq 1 ]; then
    cargo build --release --locked --no-default-features -p kyma-certd
fi

# The target directory as cargo resolves it (CARGO_TARGET_DIR, config files).
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release/kyma-certd"
if [ ! -x "$bin" ]; then
    echo "build.sh: $bin is missing; build it first or drop --no-build" >&2
    exit 1
fi

# Generated assets: the paths are the ones [package.metadata.deb] lists.
out=target/packaging
mkdir -p "$out"
generate() {
    local file=$1
    shift
    "$bin" "$@" >"$out/$file.tmp"
    if [ ! -s "$out/$file.tmp" ]; then
        echo "build.sh: 'kyma-certd $*' printed nothing" >&2
        exit 1
    fi
    mv "$out/$file.tmp" "$out/$file"
}
generate kyma-certd.1 manpage
generate kyma-certd.bash completions bash
generate _kyma-certd completions zsh
generate kyma-certd.fish completions fish

# cargo-deb prints the path of the package it wrote on stdout.
deb=$(cargo deb --no-build -p kyma-certd --output target/debian/ | tail -n 1)
echo "$deb"
