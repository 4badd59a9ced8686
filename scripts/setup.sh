#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test ggviz:
# cmake and libclang-dev (llama.cpp's build and bindgen), Chromium and
# ChromeDriver (browser tests), glslc, the Vulkan loader and Mesa's Vulkan
# drivers (llama.cpp's Vulkan backend, built and run on the software driver
# lavapipe by the tests), and the PyPI `gguf` package (the peer reader the
# tests cross-check against). Skips whatever is already there.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v glslc >/dev/null 2>&1 || need+=(glslc)
dpkg -s libvulkan1 >/dev/null 2>&1 || need+=(libvulkan1)
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! python3 -c 'import gguf' >/dev/null 2>&1; then
  echo "installing the PyPI gguf package" >&2
  python3 -m pip install --quiet --disable-pip-version-check "gguf==0.19.0"
fi
