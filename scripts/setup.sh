#!/usr/bin/env bash
# One command for a fresh Debian machine: system packages, the default base model, a release
# build, then the main job on the embedded defaults (scripts/main-job.sh: queue fine-tunes of two
# shipped tasks, run them with a worker, compare with the base model, promote and roll back).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
model=$(bash scripts/fetch-default-model.sh)
swift build -c release
bin=$(swift build -c release --show-bin-path)/lora
echo "== lora generate on the default model ($model)"
"$bin" generate --model "$model" --max-tokens 24 "The capital of France is"
echo
# The main job: fine-tunes of shipped tasks through the job queue, on the embedded PostgreSQL.
bash scripts/main-job.sh
