#!/usr/bin/env bash
# Decoding GEMV and prefill GEMM timings of the quantized kernels at SmolLM2-135M's shapes (moved out
# of the test suite: tests check correctness, not timings). Prints one line per kernel and shape.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product gemv-bench >/dev/null
"$(swift build -c release --show-bin-path)/gemv-bench"
