#!/usr/bin/env bash
# Decoding GEMV timings of the default model's own weights (layer 0's q/gate/down_proj and the LM head),
# microseconds per one-row product, median of repetitions: `lora bench gemv` (it replaced the gemv-bench
# target). --quant keep|nf4|int8|none picks the weight format (none: fp32 sgemm).
# Usage: scripts/bench/gemv.sh [--quant Q] [--threads N] [--repetitions N]
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product lora >/dev/null
exec "$(swift build -c release --show-bin-path)/lora" bench gemv "$@"
