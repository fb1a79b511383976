#!/usr/bin/env bash
# The prompt-row panel kernels alone against one OpenBLAS sgemm per chunk (scripts/bench/panelrows.c): one thread
# (OPENBLAS_NUM_THREADS=1), AVX-512F build, the default model's tile shapes, GFLOP/s and their ratio, best of the
# repetitions. Built with the toolchain's clang and the CKernels target's flags. Needs an AVX-512F CPU.
# Usage: scripts/bench/panelrows.sh [REPETITIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clang -O3 -ffp-contract=off -ISources/CKernels/include -o "$tmp/panelrows" scripts/bench/panelrows.c \
  Sources/CKernels/panel_rows.c Sources/CKernels/quant_rows.c -lopenblas -lm
OPENBLAS_NUM_THREADS=1 exec "$tmp/panelrows" "$@"
