#!/usr/bin/env bash
# llama.cpp's CPU kernels: the variant ggml picks for this processor vs the
# AVX2 one (`haswell`: what a portable x86-64-v3 static build ran) and the
# baseline (`x64`: SSE2), issue 12. One binary, the demo model's
# `ggviz build`, each variant alone in its own --backend-dir, alternately,
# 3 runs each, printing ggviz's stage times. Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
uptime
model=${GGVIZ_TEST_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
cargo build --release --quiet
bin=target/release/ggviz
best=$("$bin" devices --json | python3 -c 'import json,sys; print(next(l["path"] for l in json.load(sys.stdin)["libraries"] if l["kind"]=="cpu" and l["error"] is None))')
variants=$(dirname "$best")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=()
for v in "$(basename "$best" .so | sed 's/^libggml-cpu-//')" haswell x64; do
  [ -f "$variants/libggml-cpu-$v.so" ] || continue
  mkdir -p "$tmp/$v"
  cp "$variants/libggml-cpu-$v.so" "$tmp/$v/"
  names+=("$v")
done
echo "variants: ${names[*]} (the first is ggml's choice here)"
for run in 1 2 3; do
  for v in "${names[@]}"; do
    rm -rf "$tmp/site"
    start=$(date +%s%N)
    "$bin" --backend-dir "$tmp/$v" build "$model" -o "$tmp/site" 2>"$tmp/log"
    end=$(date +%s%N)
    printf '%-16s run %d: %5.2f s wall; %s\n' "$v" "$run" "$(echo "($end - $start) / 1000000000" | bc -l)" \
      "$(grep -o 'read .*' "$tmp/log" | head -1)"
  done
done
uptime
