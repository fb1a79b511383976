// The prompt-row panel kernels alone (Sources/CKernels/panel_rows.c) against what they replace, one OpenBLAS sgemm
// per chunk on the same fp32 tile (transB, M = chunk rows), one thread, thread CPU time, best of the repetitions.
// Shapes: the default model's Q4_1 weights (q/o 576x576, gate/up 1536x576, down 576x1536) as the tiles a 2-thread
// prefill cuts (~half of N each), rows = 8 serve prompts of 20 in one step (160 rows, sgemm: 8 calls of 20), one
// chunk of 20 (bench prefill --prefill-chunk 20) and generate's one chunk of 250. GFLOP/s (2 M N K / time); the
// panel figure includes packing the tile (ck_panel_pack).
// Usage: panelrows [REPETITIONS]
#include "CKernels.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 20;
    const long shapes[][2] = {{288, 576}, {768, 576}, {288, 1536}};   // tile rows N, K
    const long cases[][2] = {{160, 20}, {20, 20}, {250, 250}};         // rows M, sgemm chunk
    unsigned s = 1;
    for (int si = 0; si < 3; si++) {
        const long N = shapes[si][0], K = shapes[si][1];
        float *t = malloc(N * K * 4), *x = malloc(250 * K * 4), *y = malloc(250 * N * 4);
        float *panel = aligned_alloc(64, 32 * K * 4);
        long rows[250];
        for (long i = 0; i < N * K; i++) { s = s * 1664525u + 1013904223u; t[i] = (s >> 8) / 16777216.0f - 0.5f; }
        for (long i = 0; i < 250 * K; i++) { s = s * 1664525u + 1013904223u; x[i] = (s >> 8) / 16777216.0f - 0.5f; }
        for (long i = 0; i < 250; i++) rows[i] = i;
        for (int ci = 0; ci < 3; ci++) {
            const long M = cases[ci][0], chunk = cases[ci][1];
            double best[2] = {1e9, 1e9};
            for (int r = 0; r < reps; r++) {
                double t0 = now();
                for (long p = 0; p < N; p += 32) {
                    ck_panel_pack(t + p * K, 32, K, panel);
                    ck_panel_rows_avx512(panel, 32, K, x, K, rows, M, y + p, N, 0);
                }
                double t1 = now();
                for (long c = 0; c < M; c += chunk)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, chunk, N, K, 1, x + c * K, K, t, K, 0, y + c * N, N);
                double t2 = now();
                if (t1 - t0 < best[0]) best[0] = t1 - t0;
                if (t2 - t1 < best[1]) best[1] = t2 - t1;
            }
            const double gf = 2.0 * M * N * K / 1e9;
            printf("N=%4ld K=%4ld M=%3ld (sgemm chunks of %3ld): panels %6.1f GFLOP/s  sgemm %6.1f  ratio %.2fx\n", N, K, M, chunk,
                   gf / best[0], gf / best[1], best[1] / best[0]);
        }
        free(t); free(x); free(y); free(panel);
    }
    return 0;
}
