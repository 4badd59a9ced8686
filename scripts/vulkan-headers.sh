#!/usr/bin/env bash
# Prints a folder holding Vulkan and SPIR-V headers new enough for llama.cpp's
# Vulkan backend (VK_EXT_layer_settings: Vulkan-Headers >= 1.3.268), fetching
# them first if need be: Debian 13's libvulkan-dev and spirv-headers packages,
# downloaded by apt from Debian's archive (its own signature check, a private
# package list: the machine's sources and packages are left alone) and
# unpacked under .cache/vulkan-headers/, not installed. Only headers and CMake
# package files are used; the backend links the machine's own loader.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${GGVIZ_VULKAN_HEADERS_SUITE:-trixie}
root=$PWD/.cache/vulkan-headers
prefix=$root/$suite/usr
if [ -f "$prefix/include/vulkan/vulkan_core.h" ] && [ -f "$prefix/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake" ]; then
  echo "$prefix"
  exit 0
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "Debian's archive keyring ($keyring) is missing" >&2; exit 1; }
apt_dir=$root/apt-$suite
rm -rf "$apt_dir" "$root/$suite"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" > "$apt_dir/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Acquire::Languages=none
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false -o APT::Sandbox::User=root)
echo "fetching Vulkan headers from Debian $suite (libvulkan-dev, spirv-headers) into $root" >&2
apt-get "${opts[@]}" -qq update >&2
(cd "$apt_dir/debs" && apt-get "${opts[@]}" -qq download libvulkan-dev spirv-headers >&2)
for deb in "$apt_dir"/debs/*.deb; do
  dpkg-deb -x "$deb" "$root/$suite"
done
rm -rf "$apt_dir"
[ -f "$prefix/include/vulkan/vulkan_core.h" ] || { echo "no vulkan_core.h in the fetched packages" >&2; exit 1; }
echo "$prefix"
