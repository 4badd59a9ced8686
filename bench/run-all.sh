#!/usr/bin/env bash
# Every performance figure of the README, in one go. Run on a quiet machine:
# the figures are ratios or absolute times on this machine, and other load
# (builds, browsers) inflates them.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== inspect --json vs the PyPI gguf reader"
python3 bench/inspect_vs_gguf_py.py
echo "== capture overhead (128-token prompt, 2 threads)"
GGVIZ_BENCH_RUNS=${GGVIZ_BENCH_RUNS:-9} cargo bench --quiet --bench capture_overhead
echo "== capture overhead on every synthetic architecture and a 262,144-token vocabulary"
GGVIZ_BENCH_RUNS=${GGVIZ_BENCH_RUNS:-5} cargo bench --quiet --bench capture_archs
echo "== the capture pass on a busy machine (quiet vs two CPU-bound processes)"
python3 bench/busy_machine.py
echo "== logit lens product: ggml on the analytics device vs f32 sgemm"
MATMUL_NUM_THREADS=2 GGVIZ_BENCH_RUNS=${GGVIZ_BENCH_RUNS:-9} cargo bench --quiet --bench lens_product
echo "== peak memory of ggviz run"
bench/peak_memory.sh 2
echo "== ggviz build time and page size"
bench/build_time.sh
echo "== architecture view frame rate (80 layers x 64 heads)"
bench/fps.sh
