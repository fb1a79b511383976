// Fixed-order fp32 products for a few rows (LoRA's low-rank terms on decode rows), see CKernels.h.
//
// A plain C body and an AVX2 one, chosen at run time, with the same arithmetic: each of 16 lanes
// multiplies and adds its own products in order (-ffp-contract=off: never fused), the tail and the final
// sum are the same scalar code, so both give the same bits on any CPU (a test compares them).
//
// Each body reads its matrix (W, or LoRA's B) as fp32 or as fp16 bits (`half`, a constant in every caller:
// always-inlined, each kernel is compiled once per kind). fp16 values are converted exactly as they are
// loaded (vcvtph2ps, or `ck_half_value`), and every operation after the load is the same, so the `_half`
// kernels give the fp32 kernels' bits on the converted matrix, without converting it into memory first.
//
// Measured (10:19-10:25 UTC, 2 cores, load ~2 from the bench itself; medians of 5 repetitions; main's code is
// /work/bin/lora-f49c3c0, run alternating with this tree's binary): `lora bench decode --model
// SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 --repetitions 5 --new-tokens 64 --rows 8 --adapter-rank 16
// --adapters 8` (and `--adapters 1`), 3 rounds: 8 adapters 16.1 / 14.5 / 14.9 ms vs main's 16.5 / 17.0 / 18.5 ms;
// 8-adapter / 1-adapter step 0.98 / 1.15 / 1.16 vs main's 1.36 / 1.32 / 1.47 (11 earlier rounds, 10:00-10:22
// UTC under load 2-3.5: 1.09-1.46, median 1.32, vs main's 1.06-1.55, median 1.43; 3 more at 10:25-10:27, load
// ~1.5-1.8: 8 adapters 19.2 / 15.1 / 15.1 ms vs 16.7 / 16.6 / 17.4, 8/1 1.51 / 1.10 / 1.20 vs main's 1.43 /
// 1.37 / 1.01: the rounds still scatter more than the kernels move the step). perf of the 8-adapter run:
// these two kernels 15.5k samples (dense 8.2k, low rank 7.3k) against main's fp32 kernels' 22.7k, same run.
// Software prefetch of the next rows (2K values ahead in the dense tiles, 3 blocks of 8 rows ahead in the low
// rank) took a one-thread C loop over 8 adapters' matrices from ~10 to ~8 ms, but the decode A/B did not
// separate it from the noise: not kept.
#include "CKernels.h"
#include <math.h>

#define CK_LANES 16
#define CK_INLINE static inline __attribute__((always_inline))

/// The fp32 value of the IEEE fp16 with bits h (exact): a finite value's exponent and fraction moved into
/// fp32's fields and rebiased by one multiply by 2^112 (exact: fp16 subnormals become fp32 normals),
/// inf / NaN directly.
CK_INLINE float ck_half_value(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7FFF;
    union { uint32_t u; float f; } v;
    if (em >= 0x7C00) {
        v.u = sign | 0x7F800000 | (em & 0x3FF) << 13;
    } else {
        v.u = em << 13;
        v.f *= 0x1p112f;
        v.u |= sign;
    }
    return v.f;
}

/// Element i of a matrix held as fp32 (half = 0) or as fp16 bits (half = 1), as fp32.
CK_INLINE float ck_elem(const void *w, long i, int half) {
    return half ? ck_half_value(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

/// The address of element i of such a matrix.
CK_INLINE const void *ck_at(const void *w, long i, int half) {
    return half ? (const void *)((const uint16_t *)w + i) : (const void *)((const float *)w + i);
}

/// The tail and the reduction shared by both builds: lanes l and l + 8 added, then the 8 sums in a
/// fixed tree.
CK_INLINE float ck_dot_finish(float acc[CK_LANES], const void *w, int half, const float *x, long K16, long K) {
    for (long k = K16; k < K; k++) acc[k - K16] += ck_elem(w, k, half) * x[k];
    float s[8];
    for (int l = 0; l < 8; l++) s[l] = acc[l] + acc[l + 8];
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/// s = Σ_k w[k] * x[k], k < K: lane l accumulates the products k ≡ l (mod 16) for k < K16 = 16 * (K / 16)
/// in order (multiply, then add), the tail k ≥ K16 goes to lane k - K16; then `ck_dot_finish`.
CK_INLINE float ck_dot_fixed(const void *w, int half, const float *x, long K) {
    float acc[CK_LANES] = {0};
    const long K16 = K - K % CK_LANES;
    for (long k = 0; k < K16; k += CK_LANES)
        for (int l = 0; l < CK_LANES; l++) acc[l] += ck_elem(w, k + l, half) * x[k + l];
    return ck_dot_finish(acc, w, half, x, K16, K);
}

#define CK_DENSE_ROWS_BODY(DOT)                                                                     \
    for (long r = r0; r < r1; r++) {                                                                \
        const void *wr = ck_at(w, r * K, half);                                                     \
        for (long t = 0; t < T; t++) {                                                              \
            const float v = alpha * DOT(wr, half, x + t * ldx, K);                                  \
            float *yr = y + t * ldy + r;                                                            \
            *yr = accumulate ? *yr + v : v;                                                         \
        }                                                                                           \
    }

CK_INLINE void ck_dense_rows_plain(const void *w, int half, long K, long r0, long r1, const float *x, long ldx, long T,
                                   float *y, long ldy, float alpha, int accumulate) {
    CK_DENSE_ROWS_BODY(ck_dot_fixed)
}

static void ck_dense_rows_base(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                               float *y, long ldy, float alpha, int accumulate) {
    ck_dense_rows_plain(w, 0, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

static void ck_dense_rows_half_base(const uint16_t *w, long K, long r0, long r1, const float *x, long ldx, long T,
                                    float *y, long ldy, float alpha, int accumulate) {
    ck_dense_rows_plain(w, 1, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

// ---- LoRA's B product on decode rows: outputs side by side, rank in order ----

/// The plain body of `ck_low_rank_rows` (see CKernels.h): per (t, n) one running sum over r in order,
/// started from the first product, then y + alpha * sum.
CK_INLINE void ck_low_rank_rows_plain(const void *B, int half, long N, long R, long n0, const float *h, long ldh, long T,
                                      float *y, long ldy, float alpha) {
    for (long t = 0; t < T; t++) {
        const float *ht = h + t * ldh;
        float *yt = y + t * ldy;
        for (long n = n0; n < N; n++) {
            const void *bn = ck_at(B, n * R, half);
            float s = ht[0] * ck_elem(bn, 0, half);
            for (long r = 1; r < R; r++) s = s + ht[r] * ck_elem(bn, r, half);
            yt[n] = yt[n] + alpha * s;
        }
    }
}

static void ck_low_rank_rows_base(const float *B, long N, long R, long n0, const float *h, long ldh, long T,
                                  float *y, long ldy, float alpha) {
    ck_low_rank_rows_plain(B, 0, N, R, n0, h, ldh, T, y, ldy, alpha);
}

static void ck_low_rank_rows_half_base(const uint16_t *B, long N, long R, long n0, const float *h, long ldh, long T,
                                       float *y, long ldy, float alpha) {
    ck_low_rank_rows_plain(B, 1, N, R, n0, h, ldh, T, y, ldy, alpha);
}

#if defined(__x86_64__)
#include <immintrin.h>
#include "transpose8.h"

#define CK_AVX2 __attribute__((target("avx2,f16c")))
#define CK_AVX2_INLINE static inline __attribute__((target("avx2,f16c"), always_inline))

/// Elements i..i+7 of an fp32 or fp16 matrix (`ck_elem`) as 8 floats; vcvtph2ps is exact.
CK_AVX2_INLINE __m256 ck_load8(const void *w, long i, int half) {
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)))
                : _mm256_loadu_ps((const float *)w + i);
}

/// `ck_dot_fixed` with the 16 lanes in two AVX registers: the same multiplies and adds per lane.
CK_AVX2_INLINE float ck_dot_fixed_avx2(const void *w, int half, const float *x, long K) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    const long K16 = K - K % CK_LANES;
    for (long k = 0; k < K16; k += CK_LANES) {
        lo = _mm256_add_ps(lo, _mm256_mul_ps(ck_load8(w, k, half), _mm256_loadu_ps(x + k)));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(ck_load8(w, k + 8, half), _mm256_loadu_ps(x + k + 8)));
    }
    float acc[CK_LANES];
    _mm256_storeu_ps(acc, lo);
    _mm256_storeu_ps(acc + 8, hi);
    return ck_dot_finish(acc, w, half, x, K16, K);
}

/// (t, r)'s result from its 16 lane sums (`ck_dot_finish`), times alpha, stored or added.
CK_AVX2_INLINE void ck_dense_put(__m256 lo, __m256 hi, const void *wr, int half, const float *xt, long K16, long K,
                                 float *yr, float alpha, int accumulate) {
    float acc[CK_LANES];
    _mm256_storeu_ps(acc, lo);
    _mm256_storeu_ps(acc + 8, hi);
    const float v = alpha * ck_dot_finish(acc, wr, half, xt, K16, K);
    *yr = accumulate ? *yr + v : v;
}

/// Tiles of 2 weight rows x 2 inputs (each weight and input vector loaded once for two products), the
/// rest one (t, r) at a time; every (t, r) takes `ck_dot_fixed`'s operations in its order.
CK_AVX2_INLINE void ck_dense_rows_tiles(const void *w, int half, long K, long r0, long r1, const float *x, long ldx,
                                        long T, float *y, long ldy, float alpha, int accumulate) {
    const long K16 = K - K % CK_LANES;
    long r = r0;
    for (; r + 2 <= r1; r += 2) {
        const void *w0 = ck_at(w, r * K, half), *w1 = ck_at(w0, K, half);
        long t = 0;
        for (; t + 2 <= T; t += 2) {
            const float *x0 = x + t * ldx, *x1 = x0 + ldx;
            __m256 a00l = _mm256_setzero_ps(), a00h = a00l, a01l = a00l, a01h = a00l;
            __m256 a10l = a00l, a10h = a00l, a11l = a00l, a11h = a00l;
            for (long k = 0; k < K16; k += CK_LANES) {
                const __m256 w0l = ck_load8(w0, k, half), w0h = ck_load8(w0, k + 8, half);
                const __m256 w1l = ck_load8(w1, k, half), w1h = ck_load8(w1, k + 8, half);
                const __m256 x0l = _mm256_loadu_ps(x0 + k), x0h = _mm256_loadu_ps(x0 + k + 8);
                const __m256 x1l = _mm256_loadu_ps(x1 + k), x1h = _mm256_loadu_ps(x1 + k + 8);
                a00l = _mm256_add_ps(a00l, _mm256_mul_ps(w0l, x0l)); a00h = _mm256_add_ps(a00h, _mm256_mul_ps(w0h, x0h));
                a01l = _mm256_add_ps(a01l, _mm256_mul_ps(w0l, x1l)); a01h = _mm256_add_ps(a01h, _mm256_mul_ps(w0h, x1h));
                a10l = _mm256_add_ps(a10l, _mm256_mul_ps(w1l, x0l)); a10h = _mm256_add_ps(a10h, _mm256_mul_ps(w1h, x0h));
                a11l = _mm256_add_ps(a11l, _mm256_mul_ps(w1l, x1l)); a11h = _mm256_add_ps(a11h, _mm256_mul_ps(w1h, x1h));
            }
            ck_dense_put(a00l, a00h, w0, half, x0, K16, K, y + t * ldy + r, alpha, accumulate);
            ck_dense_put(a01l, a01h, w0, half, x1, K16, K, y + (t + 1) * ldy + r, alpha, accumulate);
            ck_dense_put(a10l, a10h, w1, half, x0, K16, K, y + t * ldy + r + 1, alpha, accumulate);
            ck_dense_put(a11l, a11h, w1, half, x1, K16, K, y + (t + 1) * ldy + r + 1, alpha, accumulate);
        }
        for (; t < T; t++) {
            const float *xt = x + t * ldx;
            __m256 a0l = _mm256_setzero_ps(), a0h = a0l, a1l = a0l, a1h = a0l;
            for (long k = 0; k < K16; k += CK_LANES) {
                const __m256 xl = _mm256_loadu_ps(xt + k), xh = _mm256_loadu_ps(xt + k + 8);
                a0l = _mm256_add_ps(a0l, _mm256_mul_ps(ck_load8(w0, k, half), xl));
                a0h = _mm256_add_ps(a0h, _mm256_mul_ps(ck_load8(w0, k + 8, half), xh));
                a1l = _mm256_add_ps(a1l, _mm256_mul_ps(ck_load8(w1, k, half), xl));
                a1h = _mm256_add_ps(a1h, _mm256_mul_ps(ck_load8(w1, k + 8, half), xh));
            }
            ck_dense_put(a0l, a0h, w0, half, xt, K16, K, y + t * ldy + r, alpha, accumulate);
            ck_dense_put(a1l, a1h, w1, half, xt, K16, K, y + t * ldy + r + 1, alpha, accumulate);
        }
    }
    if (r < r1) { r0 = r; CK_DENSE_ROWS_BODY(ck_dot_fixed_avx2) }
}

CK_AVX2 static void ck_dense_rows_avx2(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                                       float *y, long ldy, float alpha, int accumulate) {
    ck_dense_rows_tiles(w, 0, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

CK_AVX2 static void ck_dense_rows_half_avx2(const uint16_t *w, long K, long r0, long r1, const float *x, long ldx, long T,
                                            float *y, long ldy, float alpha, int accumulate) {
    ck_dense_rows_tiles(w, 1, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

/// Ranks the AVX2 body of `ck_low_rank_rows` keeps transposed on the stack (8 outputs x R floats);
/// larger ranks take the plain body, the same bits.
#define CK_LOW_RANK_MAX 256

/// B's rows n0..n0+7 transposed into bt[r * 8 + i] = B[n0 + i, r] (fp16 converted as loaded): 8 x 8
/// blocks through registers, the R % 8 tail one value at a time.
CK_AVX2_INLINE void ck_low_rank_transpose8(const void *B, int half, long R, long n0, float *bt) {
    long r = 0;
    for (; r + 8 <= R; r += 8) {
        const void *b = ck_at(B, n0 * R + r, half);
        ck_transpose8_regs(ck_load8(b, 0, half), ck_load8(b, R, half), ck_load8(b, 2 * R, half), ck_load8(b, 3 * R, half),
                           ck_load8(b, 4 * R, half), ck_load8(b, 5 * R, half), ck_load8(b, 6 * R, half),
                           ck_load8(b, 7 * R, half), bt + r * 8, 8);
    }
    for (; r < R; r++)
        for (int i = 0; i < 8; i++) bt[r * 8 + i] = ck_elem(B, (n0 + i) * R + r, half);
}

/// TB rows' sums for 8 outputs: accumulators in registers, r outer (each lane's sum over r in order,
/// from the first product, as the plain body), then y + alpha * sum.
#define CK_LOW_RANK_BLOCK(TB)                                                                          \
    for (; t + TB <= T; t += TB) {                                                                     \
        __m256 s[TB];                                                                                  \
        const __m256 b0 = _mm256_loadu_ps(bt);                                                         \
        for (int i = 0; i < TB; i++) s[i] = _mm256_mul_ps(_mm256_broadcast_ss(h + (t + i) * ldh), b0); \
        for (long r = 1; r < R; r++) {                                                                 \
            const __m256 br = _mm256_loadu_ps(bt + r * 8);                                             \
            for (int i = 0; i < TB; i++)                                                               \
                s[i] = _mm256_add_ps(s[i], _mm256_mul_ps(_mm256_broadcast_ss(h + (t + i) * ldh + r), br)); \
        }                                                                                              \
        for (int i = 0; i < TB; i++) {                                                                 \
            float *yo = y + (t + i) * ldy + n0;                                                        \
            _mm256_storeu_ps(yo, _mm256_add_ps(_mm256_loadu_ps(yo), _mm256_mul_ps(va, s[i])));         \
        }                                                                                              \
    }

CK_AVX2_INLINE void ck_low_rank_rows_blocks(const void *B, int half, long N, long R, const float *h, long ldh, long T,
                                            float *y, long ldy, float alpha) {
    if (R > CK_LOW_RANK_MAX) { ck_low_rank_rows_plain(B, half, N, R, 0, h, ldh, T, y, ldy, alpha); return; }
    float bt[CK_LOW_RANK_MAX * 8];
    const __m256 va = _mm256_set1_ps(alpha);
    long n0 = 0;
    for (; n0 + 8 <= N; n0 += 8) {
        ck_low_rank_transpose8(B, half, R, n0, bt);
        long t = 0;
        CK_LOW_RANK_BLOCK(8)
        CK_LOW_RANK_BLOCK(4)
        CK_LOW_RANK_BLOCK(1)
    }
    if (n0 < N) ck_low_rank_rows_plain(B, half, N, R, n0, h, ldh, T, y, ldy, alpha);
}
#undef CK_LOW_RANK_BLOCK

CK_AVX2 static void ck_low_rank_rows_avx2(const float *B, long N, long R, const float *h, long ldh, long T,
                                          float *y, long ldy, float alpha) {
    ck_low_rank_rows_blocks(B, 0, N, R, h, ldh, T, y, ldy, alpha);
}

CK_AVX2 static void ck_low_rank_rows_half_avx2(const uint16_t *B, long N, long R, const float *h, long ldh, long T,
                                               float *y, long ldy, float alpha) {
    ck_low_rank_rows_blocks(B, 1, N, R, h, ldh, T, y, ldy, alpha);
}
#endif

/// 1 when the AVX2 bodies run (AVX2, FMA and F16C: the F16C conversion is in the `_half` ones).
static int ck_rows_avx2(void) {
#if defined(__x86_64__)
    static int avx2 = -1;   // a benign race: every thread computes the same answer
    if (avx2 < 0) avx2 = ck_cpu_has_avx2_fma();
    return avx2;
#else
    return 0;
#endif
}

void ck_dense_rows(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                   float *y, long ldy, float alpha, int accumulate) {
#if defined(__x86_64__)
    if (ck_rows_avx2()) { ck_dense_rows_avx2(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate); return; }
#endif
    ck_dense_rows_base(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

void ck_dense_rows_portable(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                            float *y, long ldy, float alpha, int accumulate) {
    ck_dense_rows_base(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

void ck_dense_rows_half(const uint16_t *w, long K, long r0, long r1, const float *x, long ldx, long T,
                        float *y, long ldy, float alpha, int accumulate) {
#if defined(__x86_64__)
    if (ck_rows_avx2()) { ck_dense_rows_half_avx2(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate); return; }
#endif
    ck_dense_rows_half_base(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

void ck_dense_rows_half_portable(const uint16_t *w, long K, long r0, long r1, const float *x, long ldx, long T,
                                 float *y, long ldy, float alpha, int accumulate) {
    ck_dense_rows_half_base(w, K, r0, r1, x, ldx, T, y, ldy, alpha, accumulate);
}

void ck_low_rank_rows(const float *B, long N, long R, const float *h, long ldh, long T, float *y, long ldy, float alpha) {
#if defined(__x86_64__)
    if (ck_rows_avx2()) { ck_low_rank_rows_avx2(B, N, R, h, ldh, T, y, ldy, alpha); return; }
#endif
    ck_low_rank_rows_base(B, N, R, 0, h, ldh, T, y, ldy, alpha);
}

void ck_low_rank_rows_portable(const float *B, long N, long R, const float *h, long ldh, long T, float *y, long ldy,
                               float alpha) {
    ck_low_rank_rows_base(B, N, R, 0, h, ldh, T, y, ldy, alpha);
}

void ck_low_rank_rows_half(const uint16_t *B, long N, long R, const float *h, long ldh, long T, float *y, long ldy,
                           float alpha) {
#if defined(__x86_64__)
    if (ck_rows_avx2()) { ck_low_rank_rows_half_avx2(B, N, R, h, ldh, T, y, ldy, alpha); return; }
#endif
    ck_low_rank_rows_half_base(B, N, R, 0, h, ldh, T, y, ldy, alpha);
}

void ck_low_rank_rows_half_portable(const uint16_t *B, long N, long R, const float *h, long ldh, long T, float *y,
                                    long ldy, float alpha) {
    ck_low_rank_rows_half_base(B, N, R, 0, h, ldh, T, y, ldy, alpha);
}

// ---- fp32 -> fp16 (encoding the copies, once per adapter load) ----

/// The fp16 bits of f rounded to nearest even (NaN to a quiet NaN, past the range to infinity).
static uint16_t ck_half_bits(float f) {
    union { float f; uint32_t u; } v = { f };
    const uint32_t sign = (v.u >> 16) & 0x8000, ax = v.u & 0x7FFFFFFF;
    if (ax > 0x7F800000) return (uint16_t)(sign | 0x7E00);
    if (ax >= 0x477FF000) return (uint16_t)(sign | 0x7C00);   // >= 65520: rounds to infinity (65504 is odd)
    if (ax < 0x38800000) {   // under 2^-14: an fp16 subnormal (or zero), k · 2^-24 with k = RNE(|f| · 2^24) <= 1024
        union { uint32_t u; float f; } a = { ax };
        return (uint16_t)(sign | (uint32_t)rintf(a.f * 0x1p24f));   // exact scaling; rintf rounds to nearest even
    }
    const uint32_t m = ax & 0x7FFFFF, rest = m & 0x1FFF;
    uint32_t h = ((ax >> 23) - 112) << 10 | m >> 13;   // rebias 127 -> 15
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;   // a carry into the exponent is the right rounding
    return (uint16_t)(sign | h);
}

static void ck_float_to_half_scaled_base(const float *w, long n, float scale, uint16_t *out) {
    for (long i = 0; i < n; i++) out[i] = ck_half_bits(w[i] * scale);
}

#if defined(__x86_64__)
CK_AVX2 static void ck_float_to_half_scaled_f16c(const float *w, long n, float scale, uint16_t *out) {
    const __m256 vs = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(w + i), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    ck_float_to_half_scaled_base(w + i, n - i, scale, out + i);
}
#endif

void ck_float_to_half_scaled(const float *w, long n, float scale, uint16_t *out) {
#if defined(__x86_64__)
    if (ck_rows_avx2()) { ck_float_to_half_scaled_f16c(w, n, scale, out); return; }
#endif
    ck_float_to_half_scaled_base(w, n, scale, out);
}

void ck_float_to_half_scaled_portable(const float *w, long n, float scale, uint16_t *out) {
    ck_float_to_half_scaled_base(w, n, scale, out);
}
