#!/usr/bin/env bash
# `ggviz build` on the SmolLM2 test model: wall time and page size, structure
# only (--no-inference) and with the bundled prompts (inference + analytics),
# 3 runs each, with ggviz's own per-stage times of the last run and the
# largest peak RSS of the three (from /usr/bin/time).
# The third run is the same build with llama.cpp in ggviz's own process.
# Targets (issues 3 and 5): structure only under 1 s and a page under 1.5 MB;
# with inference under 15 s and a page under 4 MB. Issue 10 adds the
# `embeddings` stage (printed with the others) to both modes: at most 10 s.
uptime
set -euo pipefail
cd "$(dirname "$0")/.."
model=${GGVIZ_TEST_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# `--in-process` runs llama.cpp in ggviz's own process instead of its worker
# process: the difference is what the isolation costs (issue 12).
for mode in "--no-inference" "" "--in-process"; do
  label=${mode:-"with inference"}
  times=()
  rss=0
  for run in 1 2 3; do
    rm -rf "$tmp/site"
    start=$(date +%s%N)
    # shellcheck disable=SC2086
    /usr/bin/time -f %M -o "$tmp/rss" target/release/ggviz build "$model" -o "$tmp/site" $mode 2>"$tmp/log"
    end=$(date +%s%N)
    kib=$(tail -1 "$tmp/rss")
    ((kib > rss)) && rss=$kib
    ms=$(((end - start) / 1000000))
    times+=("$((ms / 1000)).$(printf '%03d' $((ms % 1000)))")
  done
  page=$(find "$tmp/site" -mindepth 2 -name index.html -not -path "*/docs/*" | head -1)
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
  printf '%-16s median %s s (runs: %s), page %s bytes, peak RSS %s MiB\n' "$label" "$median" "${times[*]}" \
    "$(stat -c %s "$page")" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
  grep -E "index.html" "$tmp/log" | sed 's/^/    /'
done
