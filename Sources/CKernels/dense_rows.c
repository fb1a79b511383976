// Fixed-order fp32 products for a few rows (LoRA's low-rank terms on decode rows), see CKernels.h.
//
// A plain C body and an AVX2 one, chosen at run time, with the same arithmetic: each of 16 lanes
// multiplies and adds its own products in order (-ffp-contract=off: never fused), the tail and the final
// sum are the same scalar code, so both give the same bits on any CPU (a test compares them).
#include "CKernels.h"

#define CK_LANES 16

/// The tail and the reduction shared by both builds: lanes l and l + 8 added, then the 8 sums in a
/// fixed tree.
static inline __attribute__((always_inline)) float ck_dot_finish(float acc[CK_LANES], const float *w, const float *x,
                                                                 long K16, long K) {
    for (long k = K16; k < K; k++) acc[k - K16] += w[k] * x[k];
    float s[8];
    for (int l = 0; l < 8; l++) s[l] = acc[l] + acc[l + 8];
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/// s = Σ_k w[k] * x[k], k < K: lane l accumulates the products k ≡ l (mod 16) for k < K16 = 16 * (K / 16)
/// in order (multiply, then add), the tail k ≥ K16 goes to lane k - K16; then `ck_dot_finish`.
static inline __attribute__((always_inline)) float ck_dot_fixed(const float *w, const float *x, long K) {
    float acc[CK_LANES] = {0};
    const long K16 = K - K % CK_LANES;
    for (long k = 0; k < K16; k += CK_LANES)
        for (int l = 0; l < CK_LANES; l++) acc[l] += w[k + l] * x[k + l];
    return ck_dot_finish(acc, w, x, K16, K);
}

#define CK_DENSE_ROWS_BODY(DOT)                                                                     \
    for (long r = r0; r < r1; r++) {                                                                \
        const float *wr = w + r * K;                                                                \
        for (long t = 0; t < T; t++) {                                                              \
            const float v = alpha * DOT(wr, x + t * ldx, K);                                        \
            float *yr = y + t * ldy + r;                                                            \
            *yr = accumulate ? *yr + v : v;                                                         \
        }                                                                                           \
    }

static void ck_dense_rows_base(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                               float *y, long ldy, float alpha, int accumulate) {
    CK_DENSE_ROWS_BODY(ck_dot_fixed)
}

#if defined(__x86_64__)
#include <immintrin.h>

/// `ck_dot_fixed` with the 16 lanes in two AVX registers: the same multiplies and adds per lane.
__attribute__((target("avx2"), always_inline)) static inline float ck_dot_fixed_avx2(const float *w, const float *x, long K) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    const long K16 = K - K % CK_LANES;
    for (long k = 0; k < K16; k += CK_LANES) {
        lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k)));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8)));
    }
    float acc[CK_LANES];
    _mm256_storeu_ps(acc, lo);
    _mm256_storeu_ps(acc + 8, hi);
    return ck_dot_finish(acc, w, x, K16, K);
}

__attribute__((target("avx2")))
static void ck_dense_rows_avx2(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                               float *y, long ldy, float alpha, int accumulate) {
    CK_DENSE_ROWS_BODY(ck_dot_fixed_avx2)
}
#endif

void ck_dense_rows(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                   float *y, long ldy, float alpha, int accumulate) {
#if defined(__x86_64__)
    static int avx2 = -1;   // a benign race: every thread computes the same answer
    if (avx2 < 0) avx2 = ck_cpu_has_avx2_fma();
    if (avx2) { ck_dense_rows_avx2(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate); return; }
#endif
    ck_dense_rows_base(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

void ck_dense_rows_portable(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                            float *y, long ldy, float alpha, int accumulate) {
    ck_dense_rows_base(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}
