# Sourced by the scripts that build from llama.cpp's source: sets `version`
# (the llama-cpp-sys-2 version Cargo.lock pins) and `src` (the llama.cpp
# source that crate vendors: a library built from other source is not
# compatible). LLAMA_CPP_SRC names a copy of it where there is no Cargo
# registry (the GPU machine: scripts/gpu-pack.sh carries it there).
# Run from the repository's root.
version=$(awk '/^name = "llama-cpp-sys-2"/ { getline; gsub(/[" ]/, "", $0); sub(/version=/, "", $0); print; exit }' Cargo.lock)
if [ -n "${LLAMA_CPP_SRC:-}" ]; then
  src=$LLAMA_CPP_SRC
  [ -f "$src/CMakeLists.txt" ] || { echo "LLAMA_CPP_SRC=$src holds no llama.cpp source" >&2; exit 1; }
else
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$version"/llama.cpp 2>/dev/null | head -1)
  [ -d "$src" ] || { echo "llama-cpp-sys-2 $version's source is not in the cargo registry (run cargo fetch)" >&2; exit 1; }
fi
