#!/usr/bin/env bash
# Runs the reliability suite, the crash test included (it is #[ignore]d in a plain
# `cargo test`), and regenerates docs/reliability.md from the results the tests write.
#   KYMA_CERTD_KILLS=10000 tests/crash/report.sh   # more kills per layout (default 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
rm -rf "$target/tmp/reliability"
suite=()
for file in tests/reliability_*.rs; do
  name="$(basename "$file" .rs)"
  [ "$name" = reliability_report ] || suite+=(--test "$name")
done
cargo test "${suite[@]}" -- --include-ignored
cargo test --test reliability_report -- --ignored
git --no-pager diff --stat -- docs/reliability.md || true
