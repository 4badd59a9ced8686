#!/usr/bin/env bash
# Builds ggviz with llama.cpp's CUDA backend (`--features cuda`) into
# target/cuda/, with the GPU check test (tests/engine_gpu.rs) beside it.
#
# Needs the CUDA toolkit (nvcc, cudart and cuBLAS static libraries). Where
# nvcc is missing on Debian 12, it installs Debian's own toolkit (CUDA 11.8,
# packages nvidia-cuda-toolkit and nvidia-cuda-dev from the non-free
# component) through a private apt source list, leaving /etc/apt as it is.
# No GPU is needed to build.
#
# CUDAARCHS picks the GPU architectures (default here: 80, which also runs
# on newer GPUs through the driver's PTX compiler). llama.cpp's own default
# is eight architectures, which takes hours on a small machine. CUDA 11.8
# cannot build Hopper (90) code of this llama.cpp: it calls PDL intrinsics
# that CUDA declares from 12.6 on (ggml-org/llama.cpp#26591).
#
# Usage: scripts/build-cuda.sh            prints the binary and test paths
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
if ! command -v nvcc >/dev/null 2>&1; then
  if ! grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    echo "error: nvcc not found; install the CUDA toolkit (12.6 or later for Hopper GPUs)" >&2
    exit 1
  fi
  echo "installing Debian's CUDA 11.8 toolkit (non-free)" >&2
  apt_dir=$(mktemp -d)
  trap 'rm -rf "$apt_dir"' EXIT
  mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial"
  cat >"$apt_dir/parts/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt_opts=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$apt_dir/parts"
    -o "Dir::State::Lists=$apt_dir/lists")
  $sudo apt-get "${apt_opts[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get "${apt_opts[@]}" install -y -qq \
    --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev >/dev/null
fi
scripts/setup.sh >/dev/null

release=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
read -r major minor <<<"$release"
export CUDAARCHS=${CUDAARCHS:-80}
if [ "$major" -eq 11 ] && [ -z "${CUDAHOSTCXX:-}" ]; then
  # CUDA 11.x accepts host compilers up to GCC 11 (Debian's toolkit pulls it in).
  command -v g++-11 >/dev/null 2>&1 && export CUDAHOSTCXX=g++-11
fi
if { [ "$major" -lt 12 ] || { [ "$major" -eq 12 ] && [ "$minor" -lt 6 ]; }; } &&
  [[ ",${CUDAARCHS//;/,}," == *",90"* ]]; then
  echo "error: CUDA $major.$minor cannot build llama.cpp's Hopper code (CUDAARCHS=$CUDAARCHS); use 12.6+ or an architecture below 90" >&2
  exit 1
fi
echo "CUDA $major.$minor, CUDAARCHS=$CUDAARCHS${CUDAHOSTCXX:+, host compiler $CUDAHOSTCXX}" >&2

# llama-cpp-sys-2 looks for the static CUDA libraries only under
# $CUDA_LIBRARY_PATH/lib64 (and /usr/local/cuda, /opt/cuda); Debian keeps
# them with the system's libraries.
mkdir -p target/cuda
if [ -z "${CUDA_LIBRARY_PATH:-}" ] && [ ! -e /usr/local/cuda/lib64/libcudart_static.a ]; then
  multiarch=/usr/lib/$(gcc -print-multiarch)
  if [ -e "$multiarch/libcudart_static.a" ]; then
    mkdir -p target/cuda/toolkit
    ln -sfn "$multiarch" target/cuda/toolkit/lib64
    export CUDA_LIBRARY_PATH=$PWD/target/cuda/toolkit CUDA_PATH=$PWD/target/cuda/toolkit
  fi
fi

# llama.cpp's CMake build keeps the architectures it first saw: start afresh
# when they change.
stamp=target/cuda/.cudaarchs
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$CUDAARCHS" ]; then
  rm -rf target/cuda/release/build/llama-cpp-sys-2-*
fi
echo "$CUDAARCHS" >"$stamp"

# One build gives both: building an integration test builds the binary too,
# with the same features (a separate `cargo build` would resolve the
# dependencies' features without the dev-dependencies and compile llama.cpp's
# CUDA backend a second time).
test_bin=$(cargo test --release --features cuda --target-dir target/cuda --test engine_gpu \
  --no-run --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "engine_gpu":
        print(m["executable"])')
echo "target/cuda/release/ggviz"
echo "$test_bin"
