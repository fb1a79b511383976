#!/usr/bin/env bash
# The integer-dot decode-row kernels alone (scripts/bench/q8rows.c), one thread, the default model's shapes
# (Q4_1 gate 1536x576 and down 576x1536, the Q8_0 LM head 49152x576 on two-digit inputs, a Q8_0 1536x576) at
# T = 1, 2, 3, 4, 8: microseconds per call, best of the repetitions. Built with the toolchain's clang and the
# CKernels target's flags. With REF=<commit>, that commit's kernels are built too and the two are run
# alternately ROUNDS times (default 2): only their ratio within a round means anything on a shared machine.
# Usage: [REF=main] [ROUNDS=2] scripts/bench/q8rows.sh [check | SHAPE [REPETITIONS]]
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build() {   # build SRC_DIR OUT
  clang -O3 -ffp-contract=off -I"$1/include" -o "$2" scripts/bench/q8rows.c "$1/q8_rows.c" "$1/q8_rows_avx2.c" "$1/q8_rows_vnni.c" -lm
}
build Sources/CKernels "$tmp/this"
if [ -z "${REF:-}" ]; then exec "$tmp/this" "$@"; fi
mkdir "$tmp/ref"
git archive "$REF" Sources/CKernels | tar -x -C "$tmp/ref"
build "$tmp/ref/Sources/CKernels" "$tmp/ref-bin"
for round in $(seq 1 "${ROUNDS:-2}"); do
  echo "== round $round: $REF"; "$tmp/ref-bin" "$@"
  echo "== round $round: this tree"; "$tmp/this" "$@"
done
