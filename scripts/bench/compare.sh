#!/usr/bin/env bash
# One table of issue 15's figures: ours (`lora bench ... --json`) beside the peers (scripts/bench/peers.sh),
# measured in the same run, with each figure's ratio to its peer, the machine's bounds (`lora bench bounds`:
# OpenBLAS sgemm GFLOP/s at training's shape, memory read GB/s) and each figure as a fraction of its bound
# (train / prefill: sgemm GFLOP/s over the frozen-weight flops per token; decode: read GB/s over the weight
# bytes per token). Absolute figures on a shared machine move by 30% or more; the ratios are the result.
# Usage: [PEERS_VENV=DIR] [THREADS=2] [REPS=3] scripts/bench/compare.sh [RESULTS_DIR]
#   RESULTS_DIR (default: a temporary directory) keeps the raw JSON lines (ours.jsonl, peers.jsonl).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${THREADS:-2}
reps=${REPS:-3}
out=${1:-$(mktemp -d)}
mkdir -p "$out"
swift build -c release --product lora >/dev/null
lora="$(swift build -c release --show-bin-path)/lora"
model=$(bash scripts/fetch-default-model.sh)
hf=${PEERS_HF_DIR:-${LORA_HOME:-$HOME/.cache/lora}/bench/smollm2-135m-fp32}
export PEERS_HF_DIR=$hf THREADS=$threads REPS=$reps
# The peers first: peers.sh also makes the fp32 checkpoint `--quant nf4` trains on.
bash scripts/bench/peers.sh > "$out/peers.jsonl"
bench() { "$lora" bench "$@" --threads "$threads" --repetitions "$reps" --json; }
{
  bench bounds --model "$model"
  bench train --model "$model" --quant auto
  bench train --model "$hf" --quant nf4
  bench prefill --model "$model"
  bench decode --model "$model"
} > "$out/ours.jsonl"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), load $(cut -d' ' -f1-3 /proc/loadavg), $threads threads, median of $reps; raw: $out"
python3 - "$out/ours.jsonl" "$out/peers.jsonl" <<'PY'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peers = {p["name"]: p for p in (json.loads(l) for l in open(sys.argv[2]) if l.strip())}
bounds = {f["name"]: f["median"] for f in next(o for o in ours if o["kind"] == "bounds")["figures"]}
gflops, gbs = bounds["sgemm_gflops"], bounds["memory_read_gb_per_s"]
print(f"machine bounds: sgemm {gflops:.1f} GFLOP/s, memory read {gbs:.2f} GB/s\n")
print("| figure | ours | peer | ratio | bound | fraction of bound |")
print("|---|---|---|---|---|---|")
def row(label, value, peer_name, fig, unit="tokens/s", peer_value=None, better_low=False):
    p = peers.get(peer_name)
    pv = peer_value if peer_value is not None else (p["median"] if p else None)
    ratio = "" if not pv else f"{(pv / value if better_low else value / pv):.2f}x"
    bound = frac = ""
    if fig and fig.get("boundFlopsPerToken"):
        b = gflops * 1e9 / fig["boundFlopsPerToken"]; bound = f"{b:.0f} tokens/s (sgemm)"; frac = f"{value / b:.2f}"
    elif fig and fig.get("boundBytesPerToken"):
        b = gbs * 1e9 / fig["boundBytesPerToken"]; bound = f"{b:.0f} tokens/s (memory)"; frac = f"{value / b:.2f}"
    peer_text = f"{p['peer']}: {pv:.1f}" if p and pv is not None else "-"
    print(f"| {label} | {value:.1f} {unit} | {peer_text} | {ratio} | {bound} | {frac} |")
for o in ours:
    if o["kind"] == "bounds": continue
    fig = o["figures"][0]
    if o["kind"] == "train":
        label = f"training tokens/s, --quant {o['quant']} ({o['model'].split('/')[-1]})"
        row(label, fig["median"], "bnb_train_tokens_per_s", fig)
        row(label + " vs PEFT fp32", fig["median"], "peft_train_tokens_per_s", None)
        mb = o["peak_rss_bytes"] / 1e6
        p = peers.get("bnb_train_tokens_per_s")
        pm = p["peak_rss_bytes"] / 1e6 if p else None
        print(f"| training peak RSS, --quant {o['quant']} | {mb:.0f} MB | {'bnb: %.0f MB' % pm if pm else '-'} | {('%.2fx' % (mb / pm)) if pm else ''} | | |")
    elif o["kind"] == "prefill":
        row(f"prefill tokens/s, {o['shape']['promptTokens']}-token prompt", fig["median"], "prefill_tokens_per_s", fig)
    elif o["kind"] == "decode":
        row(f"decode tokens/s, batch 1, greedy, {o['shape']['newTokens']} tokens", fig["median"], "decode_tokens_per_s", fig)
PY
