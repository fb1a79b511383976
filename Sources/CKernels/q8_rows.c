// Decode rows with int8 activations (see the "int8 activations" section of CKernels.h): the activation
// quantizer (AVX2 and a portable twin, the same bits), the portable integer-dot kernels (the twins of
// q8_rows_avx2.c and q8_rows_vnni.c), the pool task, and the CPU check for the VNNI build.
//
// Activation blocks follow llama.cpp's Q8_0 / Q8_1 (ggml-common.h `block_q8_0`, `block_q8_1`: 32 int8
// q with d = amax / 127, Q8_1 also s = d * Σ q for Q4_1's min term; ggml-quants.c
// `quantize_row_q8_0_ref`), with differences, all ours: d and s stay fp32 (ggml stores fp16), q rounds to
// nearest with ties to even (ggml: `roundf`, ties away from zero), and d and s are stored apart from q,
// the 8 rows of a group side by side per block (so the kernels load the 8 scales of a tile as one vector).
#include "CKernels.h"
#include <math.h>

/// max(a, b) as `maxps` computes it: a when a > b, else b (so a NaN in a gives b).
static inline float ck_max_ps1(float a, float b) { return a > b ? a : b; }
static inline float ck_min_ps1(float a, float b) { return a < b ? a : b; }

/// Where row t's block b keeps its d and s: the 8 rows of group t / 8 side by side per block.
static inline long ck_q8_scale_index(long t, long b, long bpr) { return ((t / 8) * bpr + b) * 8 + t % 8; }

/// max |x| over a block of 32: in 8 lanes (lane l: elements l, l + 8, l + 16, l + 24 in order), then the tree
/// of ck_hsum; the SIMD quantizers' `ck_q8_block_amax` gives the same bits.
static inline float ck_q8_block_amax_ref(const float *xb) {
    float m[8];
    for (int l = 0; l < 8; l++) {
        m[l] = 0.0f;
        for (int c = 0; c < 4; c++) m[l] = ck_max_ps1(m[l], fabsf(xb[c * 8 + l]));
    }
    float h[4];
    for (int l = 0; l < 4; l++) h[l] = ck_max_ps1(m[l], m[l + 4]);
    return ck_max_ps1(ck_max_ps1(h[0], h[2]), ck_max_ps1(h[1], h[3]));
}

/// The portable quantizers, one body (`digits` 1 or 2, as the AVX2 build's `ck_q8_quantize_rows_digits`). One digit:
/// d = amax / 127, q = rint(clamp(x / d, ±127)), the row's bytes K apart. Two: e = amax / 32512 (127 · 256),
/// q_hi = rint(clamp(x / (256 e), ±127)), q_lo = rint(clamp((x - 256 e · q_hi) / e, ±127)) with the remainder
/// one fma, per block the 32 high digits then the 32 low ones, rows 2K bytes apart. s = d · Σ q (two digits:
/// Σ 256 q_hi + q_lo), exact integers, one rounding. q is never -128 (the sign trick negates it).
static void ck_q8_quantize_rows_digits_ref(int digits, const float *x, long T, long K, int8_t *q, float *d, float *s) {
    const long bpr = K / 32, padded = (T + 7) / 8 * 8;
    for (long t = 0; t < padded; t++) {
        for (long b = 0; b < bpr; b++) {
            int8_t *hi = q + (t * K + b * 32) * digits, *lo = hi + 32;
            const long at = ck_q8_scale_index(t, b, bpr);
            if (t >= T) {   // the group's padding: zeros, so a tile may compute on it and drop the result
                for (int i = 0; i < 32 * digits; i++) hi[i] = 0;
                d[at] = 0.0f;
                s[at] = 0.0f;
                continue;
            }
            const float *xb = x + t * K + b * 32;
            const float e = ck_q8_block_amax_ref(xb) / (digits == 1 ? 127.0f : 32512.0f);
            const float unit = digits == 1 ? e : e * 256.0f;   // e * 256 is exact
            d[at] = e;
            int32_t sum = 0;   // one digit |sum| <= 4,064, two <= 32 * 32,639 < 2^24: exact in fp32
            for (int i = 0; i < 32; i++) {
                int qh = 0, ql = 0;
                if (e != 0.0f) {
                    const float zh = rintf(ck_min_ps1(ck_max_ps1(xb[i] / unit, -127.0f), 127.0f));   // ties to even
                    qh = (int)zh;
                    if (digits == 2) {
                        const float r = fmaf(-unit, zh, xb[i]);   // x - unit * q_hi, one rounding
                        ql = (int)rintf(ck_min_ps1(ck_max_ps1(r / e, -127.0f), 127.0f));
                    }
                }
                hi[i] = (int8_t)qh;
                if (digits == 2) lo[i] = (int8_t)ql;
                sum += digits == 1 ? qh : qh * 256 + ql;
            }
            s[at] = e * (float)sum;   // one rounding
        }
    }
}

void ck_q8_quantize_rows_ref(const float *x, long T, long K, int8_t *q, float *d, float *s) {
    ck_q8_quantize_rows_digits_ref(1, x, T, K, q, d, s);
}

void ck_q8x2_quantize_rows_ref(const float *x, long T, long K, int8_t *q, float *d, float *s) {
    ck_q8_quantize_rows_digits_ref(2, x, T, K, q, d, s);
}

/// One block's sum of products Σ q_w · q_a over its 32 elements, exact in int32.
static inline int32_t ck_q8_isum(int fmt, const uint8_t *wb, const int8_t *a) {
    int32_t acc = 0;
    for (int i = 0; i < 32; i++) {
        int w;
        if (fmt == CK_Q8_FMT_Q4_1) w = i < 16 ? (wb[4 + i] & 0x0F) : (wb[4 + i - 16] >> 4);
        else w = (int8_t)wb[2 + i];
        acc += w * a[i];
    }
    return acc;
}

static inline float ck_q8_half(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    // fp16 -> fp32, exact (normals, subnormals, inf / NaN).
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7FFF;
    union { uint32_t u; float f; } v;
    if (em >= 0x7C00) { v.u = sign | 0x7F800000 | (em & 0x3FF) << 13; return v.f; }
    v.u = em << 13;
    v.f *= 0x1p112f;
    v.u |= sign;
    return v.f;
}

static void ck_q8_rows_ref(int fmt, int digits, const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq,
                           const float *xd, const float *xs, long T, float *y, long ldy, int accumulate) {
    const long bb = fmt == CK_Q8_FMT_Q4_1 ? 20 : 34, K = bpr * 32;
    for (long t = 0; t < T; t++) {
        for (long r = r0; r < r1; r++) {
            float acc = 0.0f;
            for (long b = 0; b < bpr; b++) {
                const uint8_t *wb = blocks + (r * bpr + b) * bb;
                const long at = ck_q8_scale_index(t, b, bpr);
                const int8_t *a = xq + (t * K + b * 32) * digits;
                // One digit: |isum| < 2^24, exact. Two: hi * 256 + lo, exact in int32 (|.| < 2^27); the cast
                // exact below 2^24, else one rounding to nearest even (CKernels.h).
                const int32_t is = digits == 1 ? ck_q8_isum(fmt, wb, a) : ck_q8_isum(fmt, wb, a) * 256 + ck_q8_isum(fmt, wb, a + 32);
                const float isum = (float)is;
                float p = (ck_q8_half(wb) * xd[at]) * isum;
                if (fmt == CK_Q8_FMT_Q4_1) p = fmaf(ck_q8_half(wb + 2), xs[at], p);
                acc = acc + p;
            }
            float *yp = y + t * ldy + r;
            *yp = accumulate ? *yp + acc : acc;
        }
    }
}

void ck_q4_1_q8_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                         const float *xs, long T, float *y, long ldy, int accumulate) {
    ck_q8_rows_ref(CK_Q8_FMT_Q4_1, 1, blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}

void ck_q8_0_q8_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                         const float *xs, long T, float *y, long ldy, int accumulate) {
    ck_q8_rows_ref(CK_Q8_FMT_Q8_0, 1, blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}

void ck_q4_1_q8x2_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                           const float *xs, long T, float *y, long ldy, int accumulate) {
    ck_q8_rows_ref(CK_Q8_FMT_Q4_1, 2, blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}

void ck_q8_0_q8x2_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                           const float *xs, long T, float *y, long ldy, int accumulate) {
    ck_q8_rows_ref(CK_Q8_FMT_Q8_0, 2, blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}

void ck_q8_rows_task(void *ctx, long c) {
    const struct ck_q8_rows_job *j = ctx;
    const long lo = c * j->per, hi = lo + j->per < j->n ? lo + j->per : j->n;
    if (lo < hi) j->kernel(j->blocks, j->blocksPerRow, lo, hi, j->xq, j->xd, j->xs, j->T, j->y, j->ldy, j->accumulate);
}

#if defined(__x86_64__)
#include <immintrin.h>

int ck_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return ck_cpu_has_avx512vl() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}

#define CK_Q8_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

/// Horizontal max in ck_hsum's tree: max(max(l0|l4, l2|l6), max(l1|l5, l3|l7)), `a|b` = maxps(a, b).
CK_Q8_INLINE float ck_q8_hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/// round-to-nearest-even of clamp(x / d, -127, 127) as int32 (`cvtps2dq` under the default MXCSR).
CK_Q8_INLINE __m256i ck_q8_round(__m256 x, __m256 vd, __m256 nonzero) {
    __m256 v = _mm256_and_ps(_mm256_div_ps(x, vd), nonzero);   // d == 0: every x is 0, q = 0 (not 0/0)
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(v);
}

/// max |x| over a block's 32 elements x0..x3 in `ck_q8_block_amax_ref`'s lanes and tree (the same bits).
CK_Q8_INLINE float ck_q8_block_amax(__m256 x0, __m256 x1, __m256 x2, __m256 x3) {
    const __m256 signless = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_max_ps(_mm256_setzero_ps(), _mm256_and_ps(x0, signless));
    m = _mm256_max_ps(m, _mm256_and_ps(x1, signless));
    m = _mm256_max_ps(m, _mm256_and_ps(x2, signless));
    m = _mm256_max_ps(m, _mm256_and_ps(x3, signless));
    return ck_q8_hmax(m);
}

/// The sum of 8 int32 lanes (exact: callers keep it within int32).
CK_Q8_INLINE int32_t ck_q8_hsum_epi32(__m256i v) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
    return _mm_cvtsi128_si32(h);
}

/// The 32 int32 values of a block (in element order, 8 per vector) as int8 at p (values in -127..127).
CK_Q8_INLINE void ck_q8_store_bytes(int8_t *p, __m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    // packs work per 128-bit half; the permute puts the 8 groups of 4 back in element order.
    const __m256i pk = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    _mm256_storeu_si256((__m256i *)p, _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/// The two digits of 8 elements (the portable twin's operations, lane by lane): q_hi = rint(clamp(x / unit)),
/// r = fma(-unit, q_hi, x), q_lo = rint(clamp(r / e)); both 0 where e == 0.
CK_Q8_INLINE void ck_q8x2_digits(__m256 x, __m256 unit, __m256 ve, __m256 nonzero, __m256i *hi, __m256i *lo) {
    const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
    const __m256 zh = _mm256_round_ps(_mm256_min_ps(_mm256_max_ps(_mm256_div_ps(x, unit), nlim), lim),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_fnmadd_ps(unit, zh, x);
    const __m256 zl = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(r, ve), nlim), lim);
    *hi = _mm256_cvtps_epi32(_mm256_and_ps(zh, nonzero));
    *lo = _mm256_cvtps_epi32(_mm256_and_ps(zl, nonzero));
}

/// Both quantizers' one body (`digits` 1: int8, d = amax / 127; 2: two digits, e = amax / 32512, each block
/// its 32 high digits then its 32 low ones), the portable twins' operations lane by lane.
CK_Q8_INLINE void ck_q8_quantize_rows_digits(const float *x, long T, long K, int8_t *q, float *d, float *s, int digits) {
    const long bpr = K / 32, padded = (T + 7) / 8 * 8;
    for (long t = 0; t < padded; t++) {
        for (long b = 0; b < bpr; b++) {
            int8_t *qb = q + (t * K + b * 32) * digits;
            const long at = ck_q8_scale_index(t, b, bpr);
            if (t >= T) {   // the group's padding (as the portable twin)
                for (int g = 0; g < digits; g++) _mm256_storeu_si256((__m256i *)(qb + 32 * g), _mm256_setzero_si256());
                d[at] = 0.0f;
                s[at] = 0.0f;
                continue;
            }
            const float *xb = x + t * K + b * 32;
            const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
            const __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
            const float amax = ck_q8_block_amax(x0, x1, x2, x3);
            if (digits == 1) {
                const float db = amax / 127.0f;
                d[at] = db;
                const __m256 vd = _mm256_set1_ps(db);
                const __m256 nonzero = _mm256_cmp_ps(vd, _mm256_setzero_ps(), _CMP_NEQ_UQ);
                const __m256i i0 = ck_q8_round(x0, vd, nonzero), i1 = ck_q8_round(x1, vd, nonzero);
                const __m256i i2 = ck_q8_round(x2, vd, nonzero), i3 = ck_q8_round(x3, vd, nonzero);
                ck_q8_store_bytes(qb, i0, i1, i2, i3);
                // Σ q, exact in int32 (|Σ q| <= 4,064), then one rounding as the portable twin.
                s[at] = db * (float)ck_q8_hsum_epi32(_mm256_add_epi32(i0, _mm256_add_epi32(i1, _mm256_add_epi32(i2, i3))));
            } else {
                const float e = amax / 32512.0f;
                d[at] = e;
                const __m256 ve = _mm256_set1_ps(e), unit = _mm256_set1_ps(e * 256.0f);
                const __m256 nonzero = _mm256_cmp_ps(ve, _mm256_setzero_ps(), _CMP_NEQ_UQ);
                __m256i h0, h1, h2, h3, l0, l1, l2, l3;
                ck_q8x2_digits(x0, unit, ve, nonzero, &h0, &l0);
                ck_q8x2_digits(x1, unit, ve, nonzero, &h1, &l1);
                ck_q8x2_digits(x2, unit, ve, nonzero, &h2, &l2);
                ck_q8x2_digits(x3, unit, ve, nonzero, &h3, &l3);
                ck_q8_store_bytes(qb, h0, h1, h2, h3);
                ck_q8_store_bytes(qb + 32, l0, l1, l2, l3);
                // Σ (256 q_hi + q_lo), exact in int32 (< 2^24), then one rounding as the portable twin.
                const __m256i hs = _mm256_add_epi32(h0, _mm256_add_epi32(h1, _mm256_add_epi32(h2, h3)));
                const __m256i ls = _mm256_add_epi32(l0, _mm256_add_epi32(l1, _mm256_add_epi32(l2, l3)));
                s[at] = e * (float)ck_q8_hsum_epi32(_mm256_add_epi32(_mm256_slli_epi32(hs, 8), ls));
            }
        }
    }
}

__attribute__((target("avx2,fma,f16c")))
void ck_q8_quantize_rows(const float *x, long T, long K, int8_t *q, float *d, float *s) {
    ck_q8_quantize_rows_digits(x, T, K, q, d, s, 1);
}

__attribute__((target("avx2,fma,f16c")))
void ck_q8x2_quantize_rows(const float *x, long T, long K, int8_t *q, float *d, float *s) {
    ck_q8_quantize_rows_digits(x, T, K, q, d, s, 2);
}

#else

int ck_cpu_has_avx512vnni(void) { return 0; }
void ck_q8x2_quantize_rows(const float *x, long T, long K, int8_t *q, float *d, float *s) {
    ck_q8x2_quantize_rows_ref(x, T, K, q, d, s);
}
void ck_q8_quantize_rows(const float *x, long T, long K, int8_t *q, float *d, float *s) {
    ck_q8_quantize_rows_ref(x, T, K, q, d, s);
}

#endif
