#!/usr/bin/env bash
# Peer figures on the shapes of `lora bench` (issue 15): PEFT fp32 LoRA and PEFT + bitsandbytes NF4 QLoRA
# training tokens/s and peak RSS (batch 4 x 256, rank 16 on all linear layers, dropout 0), llama.cpp
# (llama-cpp-python) prefill of a 250-token prompt and greedy decode of 128 tokens on the same GGUF, every
# peer with THREADS (2) threads. One JSON line per figure on stdout (scripts/bench/peers.py says what each
# runs). The peers live in a virtualenv OUTSIDE the repo: PEERS_VENV (default ~/.ref/bench-venv), created
# and filled from scripts/bench/requirements-peers.txt when something pinned there is missing
# (PIP_FIND_LINKS=DIR: local wheels, e.g. torch's CPU wheel). Never run by the tests or CI.
# Usage: [PEERS_VENV=DIR] [THREADS=2] [REPS=3] scripts/bench/peers.sh [FIGURE...]
#   FIGURE: llama-prefill llama-decode peft-train bnb-train (default: all four)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${PEERS_VENV:-$HOME/.ref/bench-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q ${PIP_FIND_LINKS:+--find-links "$PIP_FIND_LINKS"} -r scripts/bench/requirements-peers.txt >&2
model=$(bash scripts/fetch-default-model.sh)
# The fp32 transformers checkpoint the PEFT peers (and `lora bench train --quant nf4`) train on: the GGUF
# dequantized by transformers' GGUF loader, made once.
hf=${PEERS_HF_DIR:-${LORA_HOME:-$HOME/.cache/lora}/bench/smollm2-135m-fp32}
if [ ! -f "$hf/model.safetensors" ]; then
  "$venv/bin/python" scripts/bench/peers.py export-hf "$model" "$hf.tmp" >&2
  rm -rf "$hf"; mv "$hf.tmp" "$hf"
fi
figures=("$@")
[ ${#figures[@]} -gt 0 ] || figures=(llama-prefill llama-decode peft-train bnb-train)
for f in "${figures[@]}"; do
  case "$f" in
    llama-*) "$venv/bin/python" scripts/bench/peers.py "$f" "$model" ;;
    *-train) "$venv/bin/python" scripts/bench/peers.py "$f" "$hf" ;;
    *) echo "peers.sh: unknown figure $f" >&2; exit 2 ;;
  esac
done
