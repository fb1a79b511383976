#!/usr/bin/env bash
# Serving figures of `lora serve` on the default model (README, "Serving"): a temporary registry
# (its own PostgreSQL under a temporary --data-dir) holding 8 tasks, each a different adapter
# (one optimizer step of `lora train` from its own seed: rank 16 on every linear layer, like a
# real fine-tune's shapes), then Benchmarks/ServeBench against `lora serve --port 0` on loopback.
# Usage: [RANK=16] [TARGETS=all-linear] [LORA_BIN=path/to/lora] scripts/bench/serve.sh [ServeBench options: --max-tokens N --requests N ...]
# (A LORA_BIN built before `ignore_eos` was known needs ServeBench's --keep-eos.)
# (LORA_BIN: another build's `lora` to serve, e.g. the previous commit's, for A/B figures; default this tree's.)
# (RANK / TARGETS: the adapters' shape; the shipped tasks use rank 16 on all linear layers, PEFT's
# default for Llama is rank 8 on q_proj,v_proj.)
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$(bash scripts/fetch-default-model.sh)
swift build -c release --product lora >/dev/null
swift build -c release --product ServeBench >/dev/null
bin=$(swift build -c release --show-bin-path)
lora=${LORA_BIN:-$bin/lora}
tmp=$(mktemp -d)
chmod 755 "$tmp"   # as root, the embedded PostgreSQL runs as another user and must reach its data directory
reg=(--data-dir "$tmp/registry")
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  "$lora" db stop "${reg[@]}" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

head -n 8 adapters/category-code/train.jsonl > "$tmp/data.jsonl"
"$lora" models add bench "$model" "${reg[@]}" >/dev/null
tasks=()
for i in 1 2 3 4 5 6 7 8; do
  "$lora" train --model "$model" --data "$tmp/data.jsonl" --output "$tmp/adapter-$i" --max-steps 1 --batch-size 1 \
    --max-seq-len 48 --scheduler constant --lr 1e-2 --seed "$i" --rank "${RANK:-16}" --alpha 32 --targets "${TARGETS:-all-linear}" >/dev/null
  "$lora" import "bench-task-$i" "$tmp/adapter-$i" --base bench "${reg[@]}" >/dev/null
  tasks+=("bench-task-$i")
done

"$lora" serve --base bench --port 0 "${reg[@]}" > "$tmp/serve.out" 2> "$tmp/serve.log" &
server=$!
for _ in $(seq 1 600); do
  grep -q '^listening on' "$tmp/serve.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
  sleep 0.1
done
port=$(sed -n 's|^listening on http://[^:]*:\([0-9]*\) .*|\1|p' "$tmp/serve.out")
[ -n "$port" ] || { echo "lora serve did not start" >&2; cat "$tmp/serve.log" >&2; exit 1; }
echo "adapters: rank ${RANK:-16} on ${TARGETS:-all-linear}, $(du -sb "$tmp/adapter-1/adapter_model.safetensors" | cut -f1) bytes each"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), load $(cut -d' ' -f1-3 /proc/loadavg)"
IFS=,; "$bin/ServeBench" --port "$port" --base bench --adapters "${tasks[*]}" --server-pid "$server" "$@"
