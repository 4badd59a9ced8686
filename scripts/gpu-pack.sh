#!/usr/bin/env bash
# Packs what the GPU check needs on a machine with an NVIDIA GPU and no Rust
# or network (this workplace's `device` machine), into .gpu/ (git-ignored),
# in two loads that each fit the 64 MiB a call may carry beside the tree:
#   .gpu/one/  llama.cpp.tar.gz  the llama.cpp source llama-cpp-sys-2 vendors
#                                (the CUDA library is built there from it)
#              model.a           the first part of the demo model
#   .gpu/two/  ggviz.tar.gz      scripts/dist.sh's portable folder (ggviz, lib/,
#                                backends/ with the CPU variants) plus the
#                                engine_gpu test binary, built for x86-64
#              model.b           the rest of the demo model (98 MB do not fit
#                                one call, and it hardly compresses)
# Then, on the GPU machine, two calls (scripts/gpu-check.sh says what each
# does), the second at once after the first so the machine stays warm:
#   carry [".gpu/one"]   scripts/gpu-check.sh start    (starts the CUDA build)
#   carry [".gpu/two"]   scripts/gpu-check.sh finish   (waits for it, runs the checks)
# Usage: scripts/gpu-pack.sh
set -euo pipefail
cd "$(dirname "$0")/.."
model=${GGVIZ_TEST_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$model" ] || scripts/fetch-test-model.sh >/dev/null
# The vendored source from the Cargo registry (its folder is named llama.cpp).
LLAMA_CPP_SRC="" . scripts/llama-cpp-src.sh

# Binaries for any x86-64 processor (the GPU machine's is not this one), in
# one target folder and one profile so that the test binary and ggviz share
# one llama.cpp build.
export RUSTFLAGS="-C target-cpu=x86-64"
test_bin=$(cargo test --release --target-dir target/dist --test engine_gpu --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engine_gpu" and m.get("executable"):
        print(m["executable"])')
[ -x "$test_bin" ] || { echo "the engine_gpu test binary did not build (cargo test --release --target-dir target/dist --test engine_gpu --no-run)" >&2; exit 1; }
cargo build --release --target-dir target/dist --bin ggviz >&2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dest=$(scripts/dist.sh --binary target/dist/release/ggviz --out "$stage" | sed 's/ (.*//')
strip --strip-unneeded -o "$dest/engine_gpu" "$test_bin"
# Only a CPU library here: a GPU library of this machine would shadow the one
# built there.
rm -f "$dest"/backends/libggml-vulkan.so* "$dest"/backends/libggml-cuda.so*

rm -rf .gpu
mkdir -p .gpu/one .gpu/two
tar -C "$stage" -czf .gpu/two/ggviz.tar.gz "$(basename "$dest")"
tar -C "$(dirname "$src")" -czf .gpu/one/llama.cpp.tar.gz \
  --exclude=llama.cpp/examples --exclude=llama.cpp/tools --exclude=llama.cpp/docs \
  --exclude=llama.cpp/pocs --exclude='*.gguf' llama.cpp
echo "llama-cpp-sys-2 $version" > .gpu/one/llama.cpp.version

# The model in two parts sized so that each call stays under the limit: the
# tree that travels with every call (tracked and untracked, not ignored) is
# counted too.
limit=$((64 * 1024 * 1024))
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | du -cb --files0-from=- | tail -1 | cut -f1)
margin=$((2 * 1024 * 1024))
one=$(du -cb .gpu/one | tail -1 | cut -f1)
size=$(stat -c %s "$model")
first=$((limit - tree - one - margin))
((first > 0)) || { echo "no room for the model in the first call (tree $tree, source $one bytes)" >&2; exit 1; }
((first > size)) && first=$size
head -c "$first" "$model" > .gpu/one/model.a
tail -c +"$((first + 1))" "$model" > .gpu/two/model.b
sha256sum "$model" | cut -d' ' -f1 > .gpu/two/model.sha256
for load in one two; do
  bytes=$(du -cb .gpu/$load | tail -1 | cut -f1)
  total=$((bytes + tree))
  printf '.gpu/%s: %s MiB (with the tree %s MiB of 64)\n' "$load" \
    "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" \
    "$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')"
  ((total < limit)) || { echo ".gpu/$load is over the 64 MiB a call carries" >&2; exit 1; }
done
cat <<EOF
Then on the GPU machine, the second call at once after the first:
  run carry=[".gpu/one"] command="scripts/gpu-check.sh start" timeout_s=180
  run carry=[".gpu/two"] command="scripts/gpu-check.sh finish" timeout_s=600
EOF
