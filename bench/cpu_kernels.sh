#!/usr/bin/env bash
# llama.cpp's CPU kernels for this processor vs the portable x86-64-v3 (AVX2)
# ones that llama-cpp-sys-2 builds unless Rust targets the native CPU
# (issue 12): the demo model's `ggviz build`, both binaries alternately, 3
# runs each, printing ggviz's stage times. The native binary is this
# checkout's release build (.cargo/config.toml sets target-cpu=native); the
# portable one is built into target/portable (a full build: ~10 min on 2
# cores the first time). Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
uptime
model=${GGVIZ_TEST_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
cargo build --release --quiet
RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --release --quiet --target-dir target/portable
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in 1 2 3; do
  for bin in target/portable/release/ggviz target/release/ggviz; do
    rm -rf "$tmp/site"
    start=$(date +%s%N)
    "$bin" build "$model" -o "$tmp/site" 2>"$tmp/log"
    end=$(date +%s%N)
    kind=native
    [[ $bin == target/portable/* ]] && kind=portable
    printf '%-8s run %d: %5.2f s wall; %s\n' "$kind" "$run" "$(echo "($end - $start) / 1000000000" | bc -l)" \
      "$(grep -o 'read .*' "$tmp/log" | head -1)"
  done
done
uptime
