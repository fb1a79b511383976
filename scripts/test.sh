#!/usr/bin/env bash
# The test command (README, .ci/run): release build, then every test in release mode.
# Numerical tests in a debug build are 10-100x slower.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
swift test -c release --disable-swift-testing "$@"
