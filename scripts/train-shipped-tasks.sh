#!/usr/bin/env bash
# Trains every shipped task (adapters/*/) on the default model with the default quantization for
# one epoch of its train.jsonl and prints before/after held-out exact match, steps, minutes,
# tokens/s and peak RSS (the README's table).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(bash scripts/fetch-default-model.sh)
bin=$(swift build -c release --show-bin-path)/lora
out=${1:-$(mktemp -d)}
mkdir -p "$out"
printf '| task | exact match before | after | steps | minutes | tokens/s | peak RSS |\n|---|---|---|---|---|---|---|\n'
for dir in adapters/*/; do
  task=$(basename "$dir")
  [ -f "$dir/train.jsonl" ] || continue
  start=$(date +%s)
  "$bin" train --model "$model" --data "$dir/train.jsonl" --eval-data "$dir/eval.jsonl" --eval-generate 60 \
    --output "$out/$task" --batch-size 8 --lr 1e-3 --epochs 1 --max-seq-len 128 --json > "$out/$task.jsonl"
  secs=$(( $(date +%s) - start ))
  python3 - "$out/$task.jsonl" "$task" "$secs" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in rows if "eval_accuracy" in r]
done = rows[-1]
print(f"| {sys.argv[2]} | {ev[0]['eval_accuracy']:.0%} | {ev[-1]['eval_accuracy']:.0%} | {done['steps']} | "
      f"{int(sys.argv[3]) / 60:.1f} | {done['tokens_per_s']:.0f} | {done['peak_rss_bytes'] / 2**20:.0f} MiB |")
PY
done
