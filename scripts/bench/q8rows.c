// The integer-dot decode-row kernels alone (CKernels/q8_rows*.c), one thread, on the default model's shapes:
// microseconds per call (the best of the repetitions; compare builds measured in the same run only), and with
// `check` the AVX2 and VNNI builds against the portable twin bit for bit (the tests' job; a quick look).
// Built and run by scripts/bench/q8rows.sh, which can build the kernels of another commit beside these.
// Usage: q8rows [check | SHAPE [REPETITIONS]]   (SHAPE 0..3: the rows of `sh` below; -1 all)
#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
// q8_rows.c's VNNI check calls this (dense_rows.c, not built here); the bench runs VNNI only where the CPU has it.
int ck_cpu_has_avx512vl(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx512vl"); }
static unsigned long long rs = 88172645463325252ull;
static unsigned long long rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static float fr(void) { return (float)((rnd() >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1; }
static unsigned short f2h(float f) { // f16 bits of f, truncated (random scales only: |f| in 2^-14..65504 or 0)
    unsigned u; memcpy(&u, &f, 4); unsigned s = (u >> 16) & 0x8000; int e = ((u >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return s; return s | (e << 10) | ((u >> 13) & 0x3ff); }
static uint8_t *mkw(int fmt, long n, long k) {
    long bb = fmt == 0 ? 20 : 34, nb = n * k / 32; uint8_t *w = malloc(nb * bb);
    for (long i = 0; i < nb; i++) { uint8_t *p = w + i * bb; unsigned short h = f2h(fr() * 0.05f); memcpy(p, &h, 2);
        int o = 2; if (fmt == 0) { h = f2h(fr() * 0.05f); memcpy(p + 2, &h, 2); o = 4; }
        for (long j = o; j < bb; j++) p[j] = rnd(); }
    return w; }
static ck_q8_rows_fn K_[2][2][3] = {
    {{ck_q4_1_q8_rows_ref, ck_q4_1_q8_rows, ck_q4_1_q8_rows_vnni}, {ck_q4_1_q8x2_rows_ref, ck_q4_1_q8x2_rows, ck_q4_1_q8x2_rows_vnni}},
    {{ck_q8_0_q8_rows_ref, ck_q8_0_q8_rows, ck_q8_0_q8_rows_vnni}, {ck_q8_0_q8x2_rows_ref, ck_q8_0_q8x2_rows, ck_q8_0_q8x2_rows_vnni}}};
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    const int builds = ck_cpu_has_avx512vnni() ? 3 : 2;   // portable, AVX2 (assumed), VNNI where the CPU has it
    int check = argc > 1 && !strcmp(argv[1], "check");
    if (check) {
        int bad = 0;
        long Ts[] = {1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,24,33};
        long Ns[] = {1, 7, 9, 15, 17, 33, 77};
        for (int fmt = 0; fmt < 2; fmt++) for (int dg = 1; dg <= 2; dg++) for (int ni = 0; ni < 7; ni++) for (int ti = 0; ti < 19; ti++) {
            long n = Ns[ni], k = 608, T = Ts[ti], tp = (T + 7) / 8 * 8;
            uint8_t *w = mkw(fmt, n, k); float *x = malloc(T * k * 4); for (long i = 0; i < T * k; i++) x[i] = fr();
            int8_t *q = malloc(tp * k * 2); float *d = malloc(tp * k / 32 * 4), *s = malloc(tp * k / 32 * 4);
            if (dg == 1) ck_q8_quantize_rows(x, T, k, q, d, s); else ck_q8x2_quantize_rows(x, T, k, q, d, s);
            float *y[3]; for (int b = 0; b < builds; b++) { y[b] = malloc(T * n * 4); for (long i = 0; i < T * n; i++) y[b][i] = 0.5f;
                K_[fmt][dg - 1][b](w, k / 32, 0, n, q, d, s, T, y[b], n, 1); }
            for (int b = 1; b < builds; b++) if (memcmp(y[0], y[b], T * n * 4)) { bad++; printf("MISMATCH fmt %d digits %d N %ld T %ld build %d\n", fmt, dg, n, T, b); }
            free(w); free(x); free(q); free(d); free(s); for (int b = 0; b < builds; b++) free(y[b]);
        }
        printf(bad ? "FAIL %d\n" : "ok\n", bad); return bad != 0;
    }
    struct { const char *name; int fmt, dg; long n, k; } sh[] = {
        {"q4_1 gate 1536x576", 0, 1, 1536, 576}, {"q4_1 down 576x1536", 0, 1, 576, 1536},
        {"q8_0x2 head 49152x576", 1, 2, 49152, 576}, {"q8_0 1536x576", 1, 1, 1536, 576}};
    long Ts[] = {1, 2, 3, 4, 8};
    int only = argc > 1 ? atoi(argv[1]) : -1, repsArg = argc > 2 ? atoi(argv[2]) : 0;
    for (int si = 0; si < 4; si++) {
        if (only >= 0 && si != only) continue;
        long n = sh[si].n, k = sh[si].k; uint8_t *w = mkw(sh[si].fmt, n, k);
        for (int ti = 0; ti < 5; ti++) {
            long T = Ts[ti], tp = (T + 7) / 8 * 8; float *x = malloc(T * k * 4); for (long i = 0; i < T * k; i++) x[i] = fr();
            int8_t *q = malloc(tp * k * 2); float *d = malloc(tp * k / 32 * 4), *s = malloc(tp * k / 32 * 4);
            if (sh[si].dg == 1) ck_q8_quantize_rows(x, T, k, q, d, s); else ck_q8x2_quantize_rows(x, T, k, q, d, s);
            float *y = malloc(T * n * 4);
            for (int b = 1; b < builds; b++) {
                double best = 1e9; int reps = repsArg ? repsArg : n > 10000 ? 15 : 200;
                for (int r = 0; r < reps; r++) { double t0 = now(); K_[sh[si].fmt][sh[si].dg - 1][b](w, k / 32, 0, n, q, d, s, T, y, n, 0); double dt = now() - t0; if (dt < best) best = dt; }
                printf("%-24s T=%ld %-5s %9.1f us  %6.1f GMAC/s\n", sh[si].name, T, b == 1 ? "avx2" : "vnni", best * 1e6, T * n * k / best * 1e-9);
            }
            free(x); free(q); free(d); free(s); free(y);
        }
        free(w);
    }
}
