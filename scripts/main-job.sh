#!/usr/bin/env bash
# The main job, through the server: start `lora serve --workers 1` on the embedded PostgreSQL and
# the default model, create an API key, fine-tune two shipped tasks over the HTTP API (`lora tune`
# uploads the data, submits the job and follows it live), answer held-out prompts with each task,
# with TASK@N and with the base through /v1/chat/completions, then promote, promote again and roll
# back, showing which version answers. Loss plots are written beside the log.
#
#   bash scripts/main-job.sh                    # full size: one epoch per task
#   MAIN_JOB_STEPS=4 bash scripts/main-job.sh   # CI-sized
#   MAIN_JOB_OUT=DIR                            # where the loss plots go (default /tmp/lora-main-job)
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(bash scripts/fetch-default-model.sh)
lora=$(swift build -c release --show-bin-path)/lora
steps=(--epochs 1)
[ -n "${MAIN_JOB_STEPS:-}" ] && steps=(--max-steps "$MAIN_JOB_STEPS")
out=${MAIN_JOB_OUT:-/tmp/lora-main-job}
mkdir -p "$out"
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# A key of our own (once one exists, every /v1 request needs one), revoked when the job ends.
keyname="main-job-$(date +%s)-$$"
key=$("$lora" keys create "$keyname" --role admin)
echo "== lora serve --model $model --workers 1"
"$lora" serve --model "$model" --port 0 --workers 1 >"$out/serve.out" 2>"$out/serve.log" &
serve_pid=$!
cleanup() {
  kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" || true
  "$lora" keys revoke "$keyname" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1200); do
  grep -q '^listening on ' "$out/serve.out" && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$out/serve.log"; echo "lora serve exited" >&2; exit 1; }
  sleep 0.1
done
# "listening on http://HOST:PORT serving ID"
read -r _ _ url _ base < <(grep '^listening on ' "$out/serve.out")
echo "listening on $url, base model '$base'"
export LORA_SERVER="$url" LORA_API_KEY="$key"

echo "== fine-tune through the HTTP API (lora tune: upload, submit, follow to the end)"
common=(--base "$base" --batch-size 8 --lr 1e-3 --max-seq-len 128 "${steps[@]}")
ids=()
for spec in "category-code 42" "date-iso 42" "category-code 7"; do
  set -- $spec
  "$lora" tune --task "$1" --data "adapters/$1/train.jsonl" --eval-data "adapters/$1/eval.jsonl" --seed "$2" "${common[@]}" \
    | tee "$out/tune.out"
  ids+=("$(sed -n 's/^queued job \([0-9]*\) .*/\1/p' "$out/tune.out" | head -1)")
done
"$lora" jobs list
versions=()
for id in "${ids[@]}"; do versions+=("$("$lora" jobs show "$id" --json | json_field version)"); done

echo "== held-out prompts through /v1/chat/completions: the base, TASK (production, else latest) and TASK@N"
python3 - "$base" "category-code=${versions[2]}" "date-iso=${versions[1]}" <<'PY'
import json, os, sys, urllib.request
url, key, base = os.environ["LORA_SERVER"], os.environ["LORA_API_KEY"], sys.argv[1]
def chat(model, prompt):
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 12, "temperature": 0, "stop": ["\n"]}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req))
    return f"{r['choices'][0]['message']['content'].strip()!r} ({r['model']})"
for arg in sys.argv[2:]:
    task, n = arg.split("=")
    print(f"-- {task}")
    for r in [json.loads(l) for l in open(f"adapters/{task}/eval.jsonl")][:3]:
        print(f"{r['prompt']!r}  expected {r['completion'].strip()!r}\n   base {chat(base, r['prompt'])}"
              f"\n   {task} {chat(task, r['prompt'])}\n   {task}@{n} {chat(f'{task}@{n}', r['prompt'])}")
PY

ask() {
  python3 - "$1" <<'PY'
import json, os, sys, urllib.request
prompt = [json.loads(l) for l in open("adapters/category-code/eval.jsonl")][0]["prompt"]
body = {"model": sys.argv[1], "messages": [{"role": "user", "content": prompt}], "max_tokens": 12, "temperature": 0, "stop": ["\n"]}
req = urllib.request.Request(os.environ["LORA_SERVER"] + "/v1/chat/completions", data=json.dumps(body).encode(),
                             headers={"Authorization": "Bearer " + os.environ["LORA_API_KEY"], "Content-Type": "application/json"})
r = json.load(urllib.request.urlopen(req))
print(f"   {sys.argv[1]} is answered by {r['model']}: {r['choices'][0]['message']['content'].strip()!r}")
PY
}
echo "== promote, promote, roll back (over HTTP); category-code's answer follows production"
"$lora" promote category-code "${versions[0]}" --reason "main job: first"
ask category-code
"$lora" promote category-code "${versions[2]}" --reason "main job: second seed"
ask category-code
"$lora" rollback category-code --reason "main job: back"
ask category-code
"$lora" history category-code
"$lora" tasks

echo "== loss plots"
for id in "${ids[@]}"; do
  "$lora" jobs plot "$id" --output "$out/loss-job-$id.svg"
  echo "   also at $url/v1/fine_tuning/jobs/ftjob-$id/loss.svg while the server runs"
done
