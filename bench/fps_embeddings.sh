#!/usr/bin/env bash
# The Embeddings view's frame rate: the whole point cloud of a synthetic
# 262,144-token vocabulary orbiting for 5 seconds after a 1-second warm-up,
# in headless Chromium with WebGL on SwiftShader; prints the build time, the
# page size and frames drawn per second. Fails below 30 fps.
# Needs chromium and chromedriver (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
uptime
cargo test --release --test browser fps_orbit_262144 -- --ignored --nocapture --test-threads=1 2>&1 |
  grep -oE "fps: .*|build: .*|page: .*|panicked.*|test result.*"
