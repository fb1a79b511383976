#!/bin/sh
# Decode tokens/s (1 and 8 streams) and GEMV timings of the default model; medians of repetitions.
# Usage: scripts/bench/decode.sh [MODEL.gguf] [--steps N] [--reps N]
set -e
cd "$(dirname "$0")/../.."
swift build -c release --product DecodeBench >/dev/null
exec .build/release/DecodeBench "$@"
