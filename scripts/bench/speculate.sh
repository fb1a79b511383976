#!/usr/bin/env bash
# Prompt-lookup speculation on the shipped order-extract task's 60 held-out prompts (README,
# "Speculative decoding"): acceptance rate, tokens/s plain vs speculative, and their ratio, with
# the task's adapter and with the base model alone. Every prompt is generated both ways and the
# outputs must be the same tokens (Benchmarks/SpeculateBench exits 1 otherwise).
#
# The adapter: ADAPTER=DIR (a PEFT directory), else one trained here like
# scripts/train-shipped-tasks.sh trains it (one epoch of adapters/order-extract/train.jsonl,
# adapters/order-extract/job.json's settings), kept in $LORA_BENCH_DIR (default
# ~/.cache/lora/bench) and reused by later runs.
#
# Usage: [ADAPTER=DIR] scripts/bench/speculate.sh [SpeculateBench options: --speculate K --lookup-ngram N --reps R ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$(bash scripts/fetch-default-model.sh)
swift build -c release --product lora >/dev/null
swift build -c release --product SpeculateBench >/dev/null
bin=$(swift build -c release --show-bin-path)
data=adapters/order-extract
adapter=${ADAPTER:-}
if [ -z "$adapter" ]; then
  dir=${LORA_BENCH_DIR:-$HOME/.cache/lora/bench}
  adapter="$dir/order-extract-adapter"
  if [ ! -f "$adapter/adapter_config.json" ]; then
    mkdir -p "$dir"
    echo "== training the order-extract adapter (one epoch) into $adapter"
    rm -rf "$adapter.tmp"
    "$bin/lora" train --model "$model" --data "$data/train.jsonl" --output "$adapter.tmp" \
      --rank 16 --alpha 32 --dropout 0.05 --batch-size 8 --lr 1e-3 --epochs 1 --max-seq-len 128 >/dev/null
    mv "$adapter.tmp" "$adapter"
  fi
fi
echo "== with the order-extract adapter"
"$bin/SpeculateBench" --model "$model" --adapter "$adapter" --data "$data/eval.jsonl" "$@"
echo "== the base model alone"
"$bin/SpeculateBench" --model "$model" --data "$data/eval.jsonl" "$@"
