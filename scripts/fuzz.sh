#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, a separate package; CI never builds it) with AddressSanitizer
# and runs each for SECONDS (default 60), one after another:
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     e.g. scripts/fuzz.sh 120 gguf chat-template
# Seeds come from Fuzz/corpus/NAME (committed, never written); inputs libFuzzer finds go to
# Fuzz/artifacts/corpus/NAME and crash/leak/timeout reproducers to Fuzz/artifacts/NAME/ (gitignored).
# Reproduce one: Fuzz/.build/release/fuzz-NAME Fuzz/artifacts/NAME/crash-...
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
seconds=${1:-60}
shift || true
all=(gguf safetensors tokenizer-json chat-template jsonl peft-config server-requests)
names=("${@:-${all[@]}}")

# Longest input per harness: a little above the largest seed (tiny GGUF 35 KB, tokenizer.json 15 KB).
max_len() {
    case $1 in
        gguf|safetensors|tokenizer-json) echo 65536 ;;
        chat-template|server-requests) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library

export SWIFT_BACKTRACE=enable=no
status=0
for name in "${names[@]}"; do
    mkdir -p "artifacts/$name" "artifacts/corpus/$name"
    echo "== fuzz-$name for ${seconds}s"
    if ! ".build/release/fuzz-$name" "artifacts/corpus/$name" "corpus/$name" \
        -max_total_time="$seconds" -max_len="$(max_len "$name")" -rss_limit_mb=4096 -timeout=30 \
        -artifact_prefix="artifacts/$name/" -print_final_stats=1; then
        echo "fuzz-$name FAILED: reproducer in Fuzz/artifacts/$name/" >&2
        status=1
    fi
done
exit $status
