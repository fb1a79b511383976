#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

int ck_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

#define CK_TARGET __attribute__((target("avx2,fma,f16c")))
#define CK_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

CK_INLINE float ck_half(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return _cvtsh_ss(h);
}

/// The 32 weights of a Q4_1 block as 4 x 8 floats, element order: w = fma(q, d, m).
CK_INLINE void ck_q4_1_block(const uint8_t *p, __m256 w[4]) {
    const __m256 vd = _mm256_set1_ps(ck_half(p)), vm = _mm256_set1_ps(ck_half(p + 2));
    const __m128i qs = _mm_loadu_si128((const __m128i *)(p + 4));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(qs, mask);                      // elements 0..15
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);   // elements 16..31
    w[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), vd, vm);
    w[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), vd, vm);
    w[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), vd, vm);
    w[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), vd, vm);
}

/// The 32 weights of a Q8_0 block as 4 x 8 floats: w = q * d.
CK_INLINE void ck_q8_0_block(const uint8_t *p, __m256 w[4]) {
    const __m256 vd = _mm256_set1_ps(ck_half(p));
    const __m128i q0 = _mm_loadu_si128((const __m128i *)(p + 2));
    const __m128i q1 = _mm_loadu_si128((const __m128i *)(p + 18));
    w[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0)), vd);
    w[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8))), vd);
    w[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1)), vd);
    w[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))), vd);
}

/// One block's dot with 32 inputs, fixed tree: (w0·x0 + w1·x1) + (w2·x2 + w3·x3).
CK_INLINE __m256 ck_block_dot(const __m256 w[4], const float *x) {
    __m256 a = _mm256_mul_ps(w[0], _mm256_loadu_ps(x));
    __m256 b = _mm256_mul_ps(w[2], _mm256_loadu_ps(x + 16));
    a = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), a);
    b = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), b);
    return _mm256_add_ps(a, b);
}

/// Horizontal sum in a fixed order: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
CK_INLINE float ck_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

CK_INLINE void ck_store(float *y, float v, int accumulate) { *y = accumulate ? *y + v : v; }

/// The shared driver. T == 1: two weight rows at a time, accumulators in registers. T > 1: each
/// block is decoded once into registers and dotted with all T inputs, accumulators in a small array
/// (the same operations in the same order per (t, r) as T == 1).
#define CK_ROWS_BODY(BLOCK_BYTES, DECODE)                                                          \
    const long K = blocksPerRow * 32;                                                           \
    const long rowBytes = blocksPerRow * (BLOCK_BYTES);                                         \
    if (T == 1) {                                                                                  \
        long r = r0;                                                                            \
        for (; r + 1 < r1; r += 2) {                                                               \
            const uint8_t *pa = blocks + r * rowBytes, *pb = pa + rowBytes;                        \
            __m256 accA = _mm256_setzero_ps(), accB = _mm256_setzero_ps();                         \
            for (long b = 0; b < blocksPerRow; b++) {                                           \
                __m256 wa[4], wb[4];                                                               \
                DECODE(pa + b * (BLOCK_BYTES), wa);                                                \
                DECODE(pb + b * (BLOCK_BYTES), wb);                                                \
                accA = _mm256_add_ps(accA, ck_block_dot(wa, x + b * 32));                          \
                accB = _mm256_add_ps(accB, ck_block_dot(wb, x + b * 32));                          \
            }                                                                                      \
            ck_store(y + r, ck_hsum(accA), accumulate);                                            \
            ck_store(y + r + 1, ck_hsum(accB), accumulate);                                        \
        }                                                                                          \
        for (; r < r1; r++) {                                                                      \
            const uint8_t *pa = blocks + r * rowBytes;                                             \
            __m256 accA = _mm256_setzero_ps();                                                     \
            for (long b = 0; b < blocksPerRow; b++) {                                           \
                __m256 wa[4];                                                                      \
                DECODE(pa + b * (BLOCK_BYTES), wa);                                                \
                accA = _mm256_add_ps(accA, ck_block_dot(wa, x + b * 32));                          \
            }                                                                                      \
            ck_store(y + r, ck_hsum(accA), accumulate);                                            \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    __m256 acc[16];                                                                                \
    for (long t0 = 0; t0 < T; t0 += 16) {                                                       \
        const long tn = T - t0 < 16 ? T - t0 : 16;                                              \
        const float *xt = x + t0 * K;                                                              \
        for (long r = r0; r < r1; r++) {                                                        \
            const uint8_t *pa = blocks + r * rowBytes;                                             \
            for (long t = 0; t < tn; t++) acc[t] = _mm256_setzero_ps();                         \
            for (long b = 0; b < blocksPerRow; b++) {                                           \
                __m256 wa[4];                                                                      \
                DECODE(pa + b * (BLOCK_BYTES), wa);                                                \
                long t = 0;                                                                     \
                for (; t + 1 < tn; t += 2) {                                                       \
                    acc[t] = _mm256_add_ps(acc[t], ck_block_dot(wa, xt + t * K + b * 32));         \
                    acc[t + 1] = _mm256_add_ps(acc[t + 1], ck_block_dot(wa, xt + (t + 1) * K + b * 32)); \
                }                                                                                  \
                if (t < tn) acc[t] = _mm256_add_ps(acc[t], ck_block_dot(wa, xt + t * K + b * 32));  \
            }                                                                                      \
            for (long t = 0; t < tn; t++) ck_store(y + (t0 + t) * ldy + r, ck_hsum(acc[t]), accumulate); \
        }                                                                                          \
    }

CK_TARGET void ck_q4_1_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                            const float *x, long T, float *y, long ldy, int accumulate) {
    CK_ROWS_BODY(20, ck_q4_1_block)
}

CK_TARGET void ck_q8_0_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                            const float *x, long T, float *y, long ldy, int accumulate) {
    CK_ROWS_BODY(34, ck_q8_0_block)
}

#else

int ck_cpu_has_avx2_fma(void) { return 0; }
void ck_q4_1_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                  const float *x, long T, float *y, long ldy, int accumulate) {}
void ck_q8_0_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                  const float *x, long T, float *y, long ldy, int accumulate) {}

#endif
