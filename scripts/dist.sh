#!/usr/bin/env bash
# Assembles ggviz as a folder to copy to other machines:
#   dist/ggviz-<version>-x86_64-linux/
#     ggviz                  the binary (stripped; finds lib/ and backends/ beside itself)
#     lib/                   libllama.so.0, libggml.so.0, libggml-base.so.0
#     backends/              libggml-cpu-<variant>.so (all 14 x86 variants: the best for
#                            the processor is chosen at start-up), and libggml-vulkan.so /
#                            libggml-cuda.so where scripts/build-backend.sh built them
# Usage: scripts/dist.sh [--native] [--binary PATH] [--out DIR]
#   By default it builds a portable binary (RUSTFLAGS="-C target-cpu=x86-64",
#   in target/dist: the Rust code runs on any x86-64; llama.cpp's kernels are
#   the CPU variants). --native packages target/release as built (Rust code
#   for this processor). --binary packages that ggviz binary of a dynamic-backends
#   build (the tests use it).
# GPU libraries of other machines (a libggml-cuda.so built on a GPU machine
# with scripts/build-backend.sh cuda) go into backends/ or any --backend-dir.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=portable bin="" out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --native) mode=native ;;
    --binary) bin=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: scripts/dist.sh [--native] [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$bin" ]; then
  if [ "$mode" = portable ]; then
    RUSTFLAGS="-C target-cpu=x86-64" cargo build --release --target-dir target/dist --bin ggviz >&2
    bin=target/dist/release/ggviz
  else
    cargo build --release --bin ggviz >&2
    bin=target/release/ggviz
  fi
fi
[ -x "$bin" ] || { echo "no ggviz binary at $bin" >&2; exit 1; }
# The build's own llama.cpp libraries: the absolute folder in the binary's
# run path (build.rs puts it there), beside it the backends.
libdir=$(readelf -d "$bin" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\(.*\)\]/\2/p' | tr ':' '\n' | grep '^/' | head -1 || true)
[ -n "$libdir" ] && [ -f "$libdir/libllama.so.0" ] \
  || { echo "$bin has no llama.cpp library folder in its run path: not a dynamic-backends build?" >&2; exit 1; }
backends=$(dirname "$libdir")/backends
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
dest=$out/ggviz-$version-x86_64-linux
rm -rf "$dest"
mkdir -p "$dest/lib" "$dest/backends"
strip --strip-unneeded -o "$dest/ggviz" "$bin"
for lib in libllama.so.0 libggml.so.0 libggml-base.so.0; do
  strip --strip-unneeded -o "$dest/lib/$lib" "$(readlink -f "$libdir/$lib")"
done
for lib in "$backends"/libggml-cpu-*.so target/backends/libggml-*.so; do
  [ -f "$lib" ] || continue
  strip --strip-unneeded -o "$dest/backends/$(basename "$lib")" "$lib"
  [ -f "$lib.version" ] && cp "$lib.version" "$dest/backends/"
done
ls "$dest/backends" | grep -q '^libggml-cpu-' || { echo "no CPU backend libraries in $backends" >&2; exit 1; }
echo "$dest ($(du -sh "$dest" | cut -f1))"
