#!/usr/bin/env bash
# The GPU check of issue 12, on a machine with an NVIDIA GPU, nvcc, CMake and
# no Rust (this workplace's `device` machine), from what scripts/gpu-pack.sh
# packed into .gpu/. Two phases, two calls, the second at once after the
# first (the machine keeps target/ between calls while it stays warm):
#   start   prints the machine (GPU, driver, nvcc, CPU), unpacks the llama.cpp
#           source and starts scripts/build-backend.sh cuda in its own
#           session (it outlives the call), returns once CMake has configured
#   finish  waits for the library, assembles the model and the ggviz folder,
#           then: ggviz devices; the engine_gpu tests on cuda:0 (CPU vs GPU
#           trace gaps, lens product, ggviz run); ggviz run on both devices;
#           the demo model's ggviz build on cuda:0 twice and on the CPU once,
#           with ggviz's stage times. Logs go to $OUT (what comes back).
# GPU_KIND=vulkan GPU_DEVICE=vulkan:0 runs the same plumbing on a Vulkan
# device (lavapipe here, to try the script; GPU_SKIP_SITE=1 leaves out the
# site builds, which lavapipe is too slow for).
set -uo pipefail
cd "$(dirname "$0")/.."
phase=${1:?usage: scripts/gpu-check.sh start|finish}
kind=${GPU_KIND:-cuda}
device=${GPU_DEVICE:-$kind:0}
work=target/gpu
out=${OUT:-$work/out}
mkdir -p "$work" "$out"
log=$out/gpu-check-$phase.log
exec > >(tee -a "$log") 2>&1
say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

# CUDA's tools and libraries where an image keeps them off the default paths.
if [ "$kind" = cuda ] && [ -d /usr/local/cuda ]; then
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/cuda/lib64
fi

case "$phase" in
start)
  say machine
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
  nvcc --version 2>&1 | tail -2 || true
  cmake --version | head -1
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
  ldd --version | head -1
  [ -f .gpu/one/llama.cpp.tar.gz ] || { echo "no .gpu/one: run scripts/gpu-pack.sh here and carry .gpu/one" >&2; exit 1; }
  say unpack
  rm -rf "$work/llama.cpp" "$work/build.rc"
  tar -C "$work" -xzf .gpu/one/llama.cpp.tar.gz
  cat .gpu/one/llama.cpp.version
  # Kept out of .gpu/, which the second call may replace.
  cp .gpu/one/model.a "$work/model.a"
  say "build libggml-$kind.so"
  date +%s > "$work/build.start"
  setsid nohup bash -c "LLAMA_CPP_SRC=$work/llama.cpp CUDAARCHS=\${CUDAARCHS:-90} scripts/build-backend.sh $kind \
    > $work/build.log 2>&1; echo \$? > $work/build.rc" < /dev/null > /dev/null 2>&1 &
  # Until CMake has configured (or failed): errors of the toolchain show
  # here, not 10 minutes later.
  for _ in $(seq 1 120); do
    [ -f "$work/build.rc" ] && break
    [ -f "target/backend-build/$kind/build.ninja" ] || [ -f "target/backend-build/$kind/Makefile" ] \
      && grep -qs 'Build files have been written' "target/backend-build/$kind.cmake.log" && break
    sleep 1
  done
  tail -5 "target/backend-build/$kind.cmake.log" 2>/dev/null
  if [ -f "$work/build.rc" ] && [ "$(cat "$work/build.rc")" != 0 ]; then
    cat "$work/build.log"
    exit 1
  fi
  echo "building in the background (target/backend-build/$kind.log)"
  ;;
finish)
  say "wait for libggml-$kind.so"
  while [ ! -f "$work/build.rc" ]; do
    sleep 5
    printf '%s objects\r' "$(find "target/backend-build/$kind" -name '*.o' 2>/dev/null | wc -l)"
  done
  echo
  rc=$(cat "$work/build.rc")
  cat "$work/build.log"
  [ "$rc" = 0 ] || { tail -40 "target/backend-build/$kind.log"; exit 1; }
  echo "library built in $(($(stat -c %Y "$work/build.rc") - $(cat "$work/build.start"))) s"
  say assemble
  cat "$work/model.a" .gpu/two/model.b > "$work/model.gguf"
  [ "$(sha256sum "$work/model.gguf" | cut -d' ' -f1)" = "$(cat .gpu/two/model.sha256)" ] \
    || { echo "the model's parts do not join into the packed model" >&2; exit 1; }
  rm -rf "$work/dist"
  mkdir -p "$work/dist"
  tar -C "$work/dist" -xzf .gpu/two/ggviz.tar.gz
  dist=$(ls -d "$work"/dist/ggviz-*)
  cp "target/backends/libggml-$kind.so" "$dist/backends/"
  ldd "$dist/backends/libggml-$kind.so" | grep 'not found' && echo "libggml-$kind.so misses libraries (above)"
  model=$PWD/$work/model.gguf
  ggviz=$PWD/$dist/ggviz
  export GGML_NO_BACKTRACE=1
  say "ggviz devices"
  "$ggviz" devices
  say "engine_gpu tests on $device"
  # The test binary links the folder's libraries through the loader path
  # (ggviz itself finds them through its run path).
  LD_LIBRARY_PATH=$PWD/$dist/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} GGVIZ_BACKEND_DIR=$PWD/$dist/backends GGVIZ_TEST_MODEL=$model \
    GGVIZ_TEST_BIN=$ggviz GGVIZ_TEST_DEVICE=$device GGVIZ_REQUIRE_GPU=1 GGVIZ_TEST_THREADS=$(nproc) \
    "$dist/engine_gpu" --nocapture --test-threads=1
  echo "engine_gpu exit status $?"
  for dev in cpu "$device"; do
    say "ggviz run --device $dev"
    "$ggviz" run "$model" -p "The capital of France is" --json --device "$dev" > "$out/run-${dev/:/}.json"
    python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
t = r["positions"][0]["top"][0]
print(r["device"], "top", repr(t["piece"]), round(t["prob"], 4), "kernels", r.get("kernels"), "timing", r.get("timing"))' \
      "$out/run-${dev/:/}.json"
  done
  if [ -z "${GPU_SKIP_SITE:-}" ]; then
    for args in "--device $device" "--device $device" "--device cpu"; do
      say "ggviz build $args"
      rm -rf "$work/site"
      start=$(date +%s%N)
      # shellcheck disable=SC2086
      "$ggviz" build "$model" -o "$work/site" $args
      echo "rc $? wall $(( ($(date +%s%N) - start) / 1000000 )) ms"
    done
    ls -l "$work"/site/*/index.html 2>/dev/null
  fi
  say done
  ;;
*)
  echo "usage: scripts/gpu-check.sh start|finish" >&2
  exit 2
  ;;
esac
