#!/usr/bin/env bash
# The frame-rate figure: pans and zooms the Architecture view of a synthetic
# 80-layer, 64-head model (5,120 heads, every layer expanded) in headless
# Chromium with WebGL on SwiftShader, for 5 seconds after a 1-second warm-up,
# and prints frames drawn per second. Fails below 30 fps.
# Needs chromium and chromedriver (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test browser fps_pan_zoom -- --ignored --nocapture --test-threads=1 2>&1 |
  grep -oE "fps: .*|panicked.*|test result.*"
