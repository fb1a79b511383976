#!/usr/bin/env bash
# The test command (README, .ci/run): release build, then every test in release mode.
# Numerical tests in a debug build are 10-100x slower. Prints how long each phase took.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
swift build -c release
t1=$(date +%s)
swift build -c release --build-tests
t2=$(date +%s)
swift test -c release --disable-swift-testing --skip-build "$@"
t3=$(date +%s)
echo "test.sh phases: package build $((t1 - t0)) s, test build $((t2 - t1)) s, tests $((t3 - t2)) s"
