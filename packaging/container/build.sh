#!/usr/bin/env bash
# Builds the sidecar image without a container registry: a static musl binary of the
# daemon (no simulator) on this machine, laid out by rootfs.sh, then `podman build` of
# Containerfile.prebuilt (FROM scratch). Prints the image reference on the last line.
#
# Needs cargo with the x86_64-unknown-linux-musl target (added here through rustup when
# missing), musl-gcc (Debian package musl-tools) and podman. PODMAN overrides the podman
# command (e.g. PODMAN="sudo podman"; tests/host/container.sh sets it).
#
# Usage: packaging/container/build.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

target=x86_64-unknown-linux-musl
read -r -a podman <<<"${PODMAN:-podman}"

for tool in cargo musl-gcc "${podman[-1]}"; do
    command -v "$tool" >/dev/null || {
        echo "build.sh: $tool is not installed (musl-gcc: apt-get install musl-tools)" >&2
        exit 2
    }
done

# The two recipes must produce the same image: their runtime stages are the same text.
runtime_stage() { sed -n '/^# --- runtime/,$p' "$1"; }
if ! diff <(runtime_stage packaging/container/Containerfile) \
    <(runtime_stage packaging/container/Containerfile.prebuilt) >&2; then
    echo "build.sh: the runtime stages of Containerfile and Containerfile.prebuilt differ" >&2
    exit 1
fi

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" >&2
fi
# aws-lc-sys compiles C: it needs a musl C compiler for a static binary.
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --no-default-features \
    --target "$target" -p kyma-certd >&2
bin="target/$target/release/kyma-certd"
# A static binary runs in an empty image: no interpreter, no shared libraries.
if readelf -l "$bin" | grep -q 'INTERP'; then
    echo "build.sh: $bin is not static (it names a program interpreter)" >&2
    exit 1
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
context=target/container
rm -rf "$context"
mkdir -p "$context"
packaging/container/rootfs.sh "$context/rootfs" "$bin" /etc/ssl/certs/ca-certificates.crt
image="localhost/kyma-certd:$version"
"${podman[@]}" build --quiet -f packaging/container/Containerfile.prebuilt -t "$image" "$context" >&2
echo "$image"
