// Elementwise kernels with exp: SwiGLU forward and backward, the softmax of attention rows, the
// LM head's log-sum-exp and softmax gradient, attention-backward rows. Each has an AVX2 + FMA body
// (8 lanes) and a portable scalar twin (`*_ref`) that performs the same operations lane by lane
// (fmaf where the vector code fuses, the same min/max/floor and the same 8-lane summation tree), so
// both give the same bits; `Activations` picks one per process (`ck_cpu_has_avx2_fma`).
// Built with -ffp-contract=off: only the explicit fmaf / _mm256_fmadd_ps fuse.
//
// exp(x) follows Cephes' expf (S. L. Moshier, cephes/single/expf.c): n = floor(x·log2(e) + 1/2),
// r = x − n·C1 − n·C2 with C1 + C2 = ln 2 split so n·C1 is exact, e^r ≈ 1 + r + r²·P(r) with
// P of degree 5 (Cephes' coefficients), times 2^n (built as 2^(n−1)·2 so n = 128 still rounds).
// Cephes reports a peak relative error of 1.7e-7 on [−0.7, 0.7]·ln 2 ranges. Inputs above ln(FLT_MAX)
// give +inf, below −86.5 (results under 2.8e-38, where 2^(n−1) would leave the normal range) give 0, NaN gives NaN.
#include "CKernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define CK_EXP_HI 88.72283905206835f
#define CK_EXP_LO (-86.5f)
#define CK_LOG2E 1.44269504088896341f
#define CK_C1 0.693359375f
#define CK_C2 (-2.12194440e-4f)
#define CK_P0 1.9875691500e-4f
#define CK_P1 1.3981999507e-3f
#define CK_P2 8.3334519073e-3f
#define CK_P3 4.1665795894e-2f
#define CK_P4 1.6666665459e-1f
#define CK_P5 5.0000001201e-1f

// ---- portable twin: one lane of the vector code ----

static inline float ck_ref_max(float a, float b) { return a > b ? a : b; }   // MAXPS a, b
static inline float ck_ref_min(float a, float b) { return a < b ? a : b; }   // MINPS a, b

static inline float ck_exp_ref1(float x) {
    float xc = ck_ref_min(ck_ref_max(x, CK_EXP_LO), CK_EXP_HI);
    float fx = floorf(fmaf(xc, CK_LOG2E, 0.5f));
    float r = fmaf(-fx, CK_C1, xc);
    r = fmaf(-fx, CK_C2, r);
    float r2 = r * r;
    float p = CK_P0;
    p = fmaf(p, r, CK_P1);
    p = fmaf(p, r, CK_P2);
    p = fmaf(p, r, CK_P3);
    p = fmaf(p, r, CK_P4);
    p = fmaf(p, r, CK_P5);
    p = fmaf(p, r2, r);
    p = p + 1.0f;
    int32_t n = (int32_t)fx;
    uint32_t bits = (uint32_t)(n - 1 + 127) << 23;
    float pow2 = 0;
    memcpy(&pow2, &bits, 4);
    float y = (p * pow2) * 2.0f;
    if (x > CK_EXP_HI) y = INFINITY;
    if (x < CK_EXP_LO) y = 0.0f;
    if (x != x) y = x;
    return y;
}

/// Σ of 8 lanes in the vector code's fixed tree.
static inline float ck_ref_tree(const float l[8]) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}
static inline double ck_ref_tree_d(const double l[8]) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

float ck_exp_ref(float x) { return ck_exp_ref1(x); }

void ck_swiglu_ref(const float *g, const float *u, float *a, long n) {
    for (long i = 0; i < n; i++) {
        float x = g[i];
        a[i] = x / (1.0f + ck_exp_ref1(-x)) * u[i];
    }
}

void ck_swiglu_backward_ref(const float *g, const float *u, const float *dA, float *dG, float *dU, long n) {
    for (long i = 0; i < n; i++) {
        float x = g[i];
        float s = 1.0f / (1.0f + ck_exp_ref1(-x));
        float silu = x * s;
        float d = dA[i];
        dU[i] = d * silu;
        dG[i] = d * u[i] * s * (1.0f + x * (1.0f - s));
    }
}

/// Lane-wise max over 8 lanes (-inf padded), then the max of the lanes in the same tree.
static inline float ck_ref_rowmax(const float *x, long n) {
    float l[8];
    for (int j = 0; j < 8; j++) l[j] = -INFINITY;
    for (long i = 0; i < n; i++) l[i & 7] = ck_ref_max(x[i], l[i & 7]);
    return ck_ref_max(ck_ref_max(ck_ref_max(l[0], l[4]), ck_ref_max(l[2], l[6])),
                      ck_ref_max(ck_ref_max(l[1], l[5]), ck_ref_max(l[3], l[7])));
}

float ck_softmax_ref(float *x, long n) {
    if (n <= 0) return -INFINITY;
    float m = ck_ref_rowmax(x, n);
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (long i = 0; i < n; i++) {
        float e = ck_exp_ref1(x[i] - m);
        x[i] = e;
        l[i & 7] += e;
    }
    float sum = ck_ref_tree(l);
    float inv = 1.0f / sum;
    for (long i = 0; i < n; i++) x[i] *= inv;
    return m + logf(sum);
}

double ck_logsumexp_ref(const float *x, long n) {
    if (n <= 0) return -INFINITY;
    float m = ck_ref_rowmax(x, n);
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (long i = 0; i < n; i++) l[i & 7] += (double)ck_exp_ref1(x[i] - m);
    return (double)m + log(ck_ref_tree_d(l));
}

void ck_exp_scaled_ref(float *x, long n, float sub, float scale) {
    for (long i = 0; i < n; i++) x[i] = ck_exp_ref1(x[i] - sub) * scale;
}

void ck_attention_backward_row_ref(float *p, float *d, long n, float lse, float dsum) {
    for (long i = 0; i < n; i++) {
        float e = ck_exp_ref1(p[i] - lse);
        p[i] = e;
        d[i] = e * (d[i] - dsum);
    }
}


// ---- rotary embedding (no exp; here beside the other per-row kernels) ----

void ck_rope_ref(float *x, long T, long heads, long E, const float *cs, const float *sn, float sign) {
    long half = E / 2;
    for (long t = 0; t < T; t++) {
        const float *c = cs + t * half, *s = sn + t * half;
        for (long h = 0; h < heads; h++) {
            float *b = x + (t * heads + h) * E;
            for (long i = 0; i < half; i++) {
                float si = sign * s[i];
                float x1 = b[i], x2 = b[i + half];
                b[i] = x1 * c[i] - x2 * si;
                b[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define CK_E_TARGET __attribute__((target("avx2,fma")))
#define CK_E_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

CK_E_INLINE __m256 ck_exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(CK_EXP_HI), lo = _mm256_set1_ps(CK_EXP_LO);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(CK_LOG2E), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(CK_C1), xc);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(CK_C2), r);
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(CK_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_P5));
    p = _mm256_fmadd_ps(p, r2, r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i n = _mm256_cvttps_epi32(fx);
    __m256 pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(126)), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, pow2), _mm256_set1_ps(2.0f));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    return y;
}

/// Lanes i < rest of the mask are loaded; others get `fill`.
CK_E_INLINE __m256i ck_tail_mask(long rest) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rest), idx);
}
CK_E_INLINE __m256 ck_load_tail(const float *p, long rest, float fill) {
    __m256i mask = ck_tail_mask(rest);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, mask), _mm256_castsi256_ps(mask));
}

CK_E_INLINE float ck_tree8(__m256 v) {
    float l[8];
    _mm256_storeu_ps(l, v);
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

CK_E_TARGET void ck_swiglu(const float *g, const float *u, float *a, long n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 e = ck_exp8(_mm256_xor_ps(x, sign));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    if (i < n) ck_swiglu_ref(g + i, u + i, a + i, n - i);
}

CK_E_TARGET void ck_swiglu_backward(const float *g, const float *u, const float *dA, float *dG, float *dU, long n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, ck_exp8(_mm256_xor_ps(x, sign))));
        __m256 silu = _mm256_mul_ps(x, s);
        __m256 d = _mm256_loadu_ps(dA + i);
        _mm256_storeu_ps(dU + i, _mm256_mul_ps(d, silu));
        __m256 t = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(u + i)), s);
        _mm256_storeu_ps(dG + i, _mm256_mul_ps(t, _mm256_add_ps(one, _mm256_mul_ps(x, _mm256_sub_ps(one, s)))));
    }
    if (i < n) ck_swiglu_backward_ref(g + i, u + i, dA + i, dG + i, dU + i, n - i);
}

CK_E_INLINE float ck_rowmax8(const float *x, long n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    long i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
    if (i < n) m = _mm256_max_ps(ck_load_tail(x + i, n - i, -INFINITY), m);
    float l[8];
    _mm256_storeu_ps(l, m);
    return ck_ref_max(ck_ref_max(ck_ref_max(l[0], l[4]), ck_ref_max(l[2], l[6])),
                      ck_ref_max(ck_ref_max(l[1], l[5]), ck_ref_max(l[3], l[7])));
}

CK_E_TARGET float ck_softmax(float *x, long n) {
    if (n <= 0) return -INFINITY;
    float m = ck_rowmax8(x, n);
    const __m256 vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        __m256i mask = ck_tail_mask(n - i);
        __m256 e = ck_exp8(_mm256_sub_ps(ck_load_tail(x + i, n - i, -INFINITY), vm));
        _mm256_maskstore_ps(x + i, mask, e);
        acc = _mm256_add_ps(acc, e);   // lanes past the end hold exp(-inf) = 0
    }
    float sum = ck_tree8(acc);
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (1.0f / sum);
    return m + logf(sum);
}

CK_E_TARGET double ck_logsumexp(const float *x, long n) {
    if (n <= 0) return -INFINITY;
    float m = ck_rowmax8(x, n);
    const __m256 vm = _mm256_set1_ps(m);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    if (i < n) {
        __m256 e = ck_exp8(_mm256_sub_ps(ck_load_tail(x + i, n - i, -INFINITY), vm));
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double l[8];
    _mm256_storeu_pd(l, lo);
    _mm256_storeu_pd(l + 4, hi);
    return (double)m + log(ck_ref_tree_d(l));
}

CK_E_TARGET void ck_exp_scaled(float *x, long n, float sub, float scale) {
    const __m256 vs = _mm256_set1_ps(sub), vk = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs)), vk));
    if (i < n) ck_exp_scaled_ref(x + i, n - i, sub, scale);
}

CK_E_TARGET void ck_attention_backward_row(float *p, float *d, long n, float lse, float dsum) {
    const __m256 vl = _mm256_set1_ps(lse), vd = _mm256_set1_ps(dsum);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), vl));
        _mm256_storeu_ps(p + i, e);
        _mm256_storeu_ps(d + i, _mm256_mul_ps(e, _mm256_sub_ps(_mm256_loadu_ps(d + i), vd)));
    }
    if (i < n) ck_attention_backward_row_ref(p + i, d + i, n - i, lse, dsum);
}

CK_E_TARGET void ck_rope(float *x, long T, long heads, long E, const float *cs, const float *sn, float sign) {
    long half = E / 2;
    const __m256 vsign = _mm256_set1_ps(sign);
    for (long t = 0; t < T; t++) {
        const float *c = cs + t * half, *s = sn + t * half;
        for (long h = 0; h < heads; h++) {
            float *b = x + (t * heads + h) * E;
            long i = 0;
            for (; i + 8 <= half; i += 8) {
                __m256 vc = _mm256_loadu_ps(c + i);
                __m256 vs = _mm256_mul_ps(vsign, _mm256_loadu_ps(s + i));
                __m256 x1 = _mm256_loadu_ps(b + i), x2 = _mm256_loadu_ps(b + i + half);
                _mm256_storeu_ps(b + i, _mm256_sub_ps(_mm256_mul_ps(x1, vc), _mm256_mul_ps(x2, vs)));
                _mm256_storeu_ps(b + i + half, _mm256_add_ps(_mm256_mul_ps(x2, vc), _mm256_mul_ps(x1, vs)));
            }
            for (; i < half; i++) {
                float si = sign * s[i];
                float x1 = b[i], x2 = b[i + half];
                b[i] = x1 * c[i] - x2 * si;
                b[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

#else

void ck_swiglu(const float *g, const float *u, float *a, long n) { ck_swiglu_ref(g, u, a, n); }
void ck_swiglu_backward(const float *g, const float *u, const float *dA, float *dG, float *dU, long n) {
    ck_swiglu_backward_ref(g, u, dA, dG, dU, n);
}
float ck_softmax(float *x, long n) { return ck_softmax_ref(x, n); }
double ck_logsumexp(const float *x, long n) { return ck_logsumexp_ref(x, n); }
void ck_exp_scaled(float *x, long n, float sub, float scale) { ck_exp_scaled_ref(x, n, sub, scale); }
void ck_attention_backward_row(float *p, float *d, long n, float lse, float dsum) {
    ck_attention_backward_row_ref(p, d, n, lse, dsum);
}
void ck_rope(float *x, long T, long heads, long E, const float *cs, const float *sn, float sign) {
    ck_rope_ref(x, T, heads, E, cs, sn, sign);
}

#endif
