#!/usr/bin/env bash
# The test family of issue 11, built by ggviz itself from the demo model:
# the F16 form of the Q4_1 demo file as the reference, then Q8_0, Q6_K,
# Q4_K_M, Q3_K_M, Q2_K and IQ3_XS (with the importance matrix from ggviz's
# own capture), scored on 4,096 tokens of the bundled evaluation text.
# Prints the stage times (quantize, imatrix, evaluation; inference and
# analytics per model page; render) and the family page's size. Run it on a
# quiet machine; the load average is printed beside the figures.
# Usage: bench/family_build.sh [ggviz binary] (default: target/release/ggviz)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/ggviz}
[ -x "$BIN" ] || cargo build --release
MODEL=${GGVIZ_TEST_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=$(mktemp -d)
CACHE=${GGVIZ_QUANT_CACHE:-$OUT/cache}
uptime
/usr/bin/time -v "$BIN" build "$MODEL" \
    --quantize F16,Q8_0,Q6_K,Q4_K_M,Q3_K_M,Q2_K,IQ3_XS \
    --eval-tokens 4096 --quant-cache "$CACHE" -o "$OUT/site" 2> "$OUT/stderr" || {
    cat "$OUT/stderr"; exit 1; }
grep -v "^\s*\(Command\|User\|System\|Percent\|Average\|Major\|Minor\|Volun\|Invol\|Swaps\|File\|Socket\|Signals\|Page\|Exit\)" "$OUT/stderr"
ls -l "$OUT"/site/families/*/index.html
uptime
