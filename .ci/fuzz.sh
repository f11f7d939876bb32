#!/usr/bin/env bash
# Short bounded fuzz run of every target in fuzz/ (not part of .ci/run).
#
#   .ci/fuzz.sh [SECONDS_PER_TARGET]     default 60
#
# cargo-fuzz's sanitizers need a nightly compiler. On a stable toolchain this builds the targets
# with libFuzzer's coverage instrumentation (stable -C flags, no sanitizer) and runs each binary
# directly; with `cargo fuzz` installed and a nightly toolchain, `cargo fuzz run TARGET` works as
# usual. The first build compiles every dependency with instrumentation (about 19 minutes on two
# shared cores); later runs reuse it. New inputs found by a run land in fuzz/corpus/TARGET; crashes in fuzz/artifacts/TARGET.
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")/../fuzz"

targets=(inspect policy bearer_jwt)

export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (which would not link
# against the coverage hooks), as cargo-fuzz does.
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --bins --target "$triple"

for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "== $target: ${seconds}s"
  "target/$triple/release/$target" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==)|ERROR|panicked" || true
done
