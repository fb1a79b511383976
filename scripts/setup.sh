#!/usr/bin/env bash
# One command for a fresh Debian machine: system packages, the default base model, a release
# build, then the main job on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
model=$(bash scripts/fetch-default-model.sh)
swift build -c release
bin=$(swift build -c release --show-bin-path)/lora
echo "== lora generate on the default model ($model)"
"$bin" generate --model "$model" --quant none --max-tokens 24 "The capital of France is"
echo
