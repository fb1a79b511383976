#!/usr/bin/env bash
# The main job on the embedded defaults: queue fine-tunes of two shipped tasks on the default
# model, run them with a worker on the embedded PostgreSQL, show each registered version
# answering held-out prompts beside the base model, then promote and roll back.
#
#   bash scripts/main-job.sh            # full size: one epoch per task
#   MAIN_JOB_STEPS=4 bash scripts/main-job.sh   # CI-sized
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(bash scripts/fetch-default-model.sh)
lora=$(swift build -c release --show-bin-path)/lora
steps=(--epochs 1)
[ -n "${MAIN_JOB_STEPS:-}" ] && steps=(--max-steps "$MAIN_JOB_STEPS")
common=(--model "$model" --batch-size 8 --lr 1e-3 --max-seq-len 128 "${steps[@]}")

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
echo "== queue fine-tunes"
ids=()
for spec in "category-code 42" "date-iso 42" "category-code 7"; do
  set -- $spec
  ids+=("$("$lora" jobs submit --task "$1" --data "adapters/$1/train.jsonl" --eval-data "adapters/$1/eval.jsonl" \
    --seed "$2" "${common[@]}" --json | json_field id)")
done
echo "queued jobs ${ids[*]}"
echo "== run them"
"$lora" worker --once
"$lora" jobs list

echo "== held-out prompts: base model vs the registered adapter"
python3 - "$lora" "$model" <<'PY'
import json, subprocess, sys
lora, model = sys.argv[1], sys.argv[2]
def gen(prompt, adapter=None):
    args = [lora, "generate", "--model", model, "--max-tokens", "12", "--stop", "\n", "--json"]
    if adapter:
        args += ["--adapter", adapter]
    out = subprocess.run(args + [prompt], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["text"].strip()
for task in ("category-code", "date-iso"):
    rows = [json.loads(l) for l in open(f"adapters/{task}/eval.jsonl")][:3]
    print(f"-- {task}@latest")
    for r in rows:
        print(f"{r['prompt']!r}\n   expected {r['completion'].strip()!r}  base {gen(r['prompt'])!r}  adapter {gen(r['prompt'], task + '@latest')!r}")
PY

echo "== promote, promote, roll back"
first=$("$lora" jobs show "${ids[0]}" --json | json_field version)
second=$("$lora" jobs show "${ids[2]}" --json | json_field version)
"$lora" promote category-code "$first"
"$lora" promote category-code "$second"
"$lora" rollback category-code
"$lora" history category-code
"$lora" tasks
