#!/usr/bin/env bash
# Builds one of llama.cpp's GPU backends as a library ggviz loads at run
# time (a ggviz built with `--features dynamic-backends`): libggml-vulkan.so
# or libggml-cuda.so, from the very llama.cpp source the llama-cpp-sys-2
# crate vendors (a backend built from other source is not compatible), into
# target/backends/. Then: ggviz --backend-dir target/backends ...
# Usage: scripts/build-backend.sh vulkan|cuda
# Vulkan needs (Debian): glslc and libvulkan1, and headers new enough
# (fetched from Debian 13 where the machine's are older); to run it without
# a GPU, mesa-vulkan-drivers (lavapipe) and GGML_VK_VISIBLE_DEVICES=0.
# CUDA needs nvcc (CUDA >= 12.6 for Hopper); CUDAARCHS picks the GPUs
# (default 80;90).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/build-backend.sh vulkan|cuda}
case "$kind" in
  vulkan) flags=(-DGGML_VULKAN=ON) ;;
  cuda) flags=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${CUDAARCHS:-80;90}") ;;
  *) echo "unknown backend $kind (vulkan or cuda)" >&2; exit 2 ;;
esac
command -v cmake >/dev/null || { echo "cmake is missing (scripts/setup.sh installs it)" >&2; exit 1; }
vk_flags=()
if [ "$kind" = vulkan ]; then
  # This llama.cpp's Vulkan backend uses VK_EXT_layer_settings
  # (ggml-vulkan.cpp, vk::LayerSettingEXT): Debian 12's headers (1.3.239)
  # lack it and the compile fails deep in the build. Headers are only needed
  # at build time (ggml-vulkan loads every function through the loader at run
  # time, and Debian 12's loader 1.3.239 runs it), so where the machine's are
  # too old, Debian 13's libvulkan-dev and spirv-headers packages are fetched
  # from Debian's archive by apt (signature-checked) and unpacked under
  # .cache/vulkan-headers, nothing installed: scripts/vulkan-headers.sh.
  command -v glslc >/dev/null || { echo "glslc is missing (Debian: glslc)" >&2; exit 1; }
  loader=$(ldconfig -p | awk '/libvulkan\.so\.1 .*x86-64/ { print $NF; exit }')
  [ -n "$loader" ] || { echo "the Vulkan loader libvulkan.so.1 is missing (Debian: libvulkan1)" >&2; exit 1; }
  if [ -n "${VULKAN_SDK:-}" ]; then
    inc=$VULKAN_SDK/include
  elif grep -qs VK_EXT_layer_settings /usr/include/vulkan/vulkan_core.h && [ -f /usr/include/spirv/unified1/spirv.hpp ]; then
    inc=/usr/include
  else
    prefix=$(scripts/vulkan-headers.sh)
    inc=$prefix/include
    vk_flags=("-DSPIRV-Headers_DIR=$prefix/share/cmake/SPIRV-Headers")
  fi
  if ! grep -qs VK_EXT_layer_settings "$inc/vulkan/vulkan_core.h"; then
    echo "the Vulkan headers in $inc ($(grep -m1 -o 'VK_HEADER_VERSION [0-9]*' "$inc/vulkan/vulkan_core.h" 2>/dev/null))" \
      "lack VK_EXT_layer_settings, which llama.cpp's Vulkan backend needs" >&2
    exit 1
  fi
  vk_flags+=("-DVulkan_INCLUDE_DIR=$inc" "-DVulkan_LIBRARY=$loader")
fi
# The vendored source, by the version Cargo.lock pins (or LLAMA_CPP_SRC).
. scripts/llama-cpp-src.sh
build=target/backend-build/$kind
out=target/backends
mkdir -p "$out" "$build"
# Configured from llama.cpp's top level, as the crate's build script does
# (the vendored ggml lacks what a stand-alone ggml configure needs); only
# the backend's target is built.
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF -DGGML_CPU=OFF -DCMAKE_SKIP_RPATH=ON \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF "${flags[@]}" ${vk_flags[@]+"${vk_flags[@]}"} > "$build.cmake.log" 2>&1 \
  || { tail -30 "$build.cmake.log"; exit 1; }
cmake --build "$build" --target "ggml-$kind" -j "$(nproc)" > "$build.log" 2>&1 \
  || { tail -30 "$build.log"; exit 1; }
lib=$(find "$build" -name "libggml-$kind.so" | head -1)
strip --strip-unneeded -o "$out/libggml-$kind.so" "$lib"
echo "llama-cpp-sys-2 $version" > "$out/libggml-$kind.so.version"
ls -l "$out/libggml-$kind.so"
