#!/usr/bin/env bash
# Peak memory (max RSS, from /usr/bin/time) of `ggviz run` on the SmolLM2
# test model with the 128-token prompt of bench/prompt-128.txt, against the
# budget of 2 × model file size + trace size. Prints one line per capture
# mode and exits non-zero if a run goes over its budget.
# Usage: bench/peak_memory.sh [threads]   (GGVIZ_TEST_MODEL overrides the model)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${GGVIZ_TEST_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
threads=${1:-2}
cargo build --release --quiet
prompt=$(cat bench/prompt-128.txt)
file_bytes=$(stat -c %s "$model")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for heads in norms full; do
  /usr/bin/time -f %M -o "$tmp/rss" target/release/ggviz run "$model" \
    --prompt "$prompt" --threads "$threads" --heads "$heads" --json >"$tmp/out.json"
  python3 - "$tmp/out.json" "$tmp/rss" "$file_bytes" "$heads" <<'PY' || status=1
import json, sys
out = json.load(open(sys.argv[1]))
rss = int(open(sys.argv[2]).read().split()[-1]) * 1024
file_bytes, heads = int(sys.argv[3]), sys.argv[4]
trace = out["capture"]["trace_bytes"]
budget = 2 * file_bytes + trace
mib = lambda b: b / 2**20
print(f"heads={heads:<5} tokens={len(out['tokens'])} peak RSS {mib(rss):.1f} MiB, "
      f"budget 2 x {mib(file_bytes):.1f} + trace {mib(trace):.1f} = {mib(budget):.1f} MiB "
      f"({100 * rss / budget:.0f}% of budget)")
sys.exit(0 if rss < budget else 1)
PY
done
exit $status
