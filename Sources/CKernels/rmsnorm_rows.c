// RMSNorm rows (see CKernels.h, `ck_rmsnorm_rows`), forward and backward for a frozen weight, as
// LlamaRMSNorm computes them in fp32: y = w * (x * r), r = 1 / sqrt(mean(x²) + eps).
//
// An AVX2 body and a portable twin (`*_ref`) with the same arithmetic (-ffp-contract=off: multiplies and
// adds never fused): every sum over a row is 8 lanes, lane l adding the terms i ≡ l (mod 8) for
// i < D8 = 8 * (D / 8) in order, the tail i >= D8 into lanes 0.. in order, then the 8 lanes in the fixed
// tree ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)); the per-element work is the same multiplies in
// the same order. So both builds give the same bits, and a row's bits depend on that row alone.
#include "CKernels.h"
#include <math.h>

#define CK_N_LANES 8

static inline float ck_n_tree(const float l[CK_N_LANES]) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

/// r = 1 / sqrt(ss / D + eps): the one scalar step both builds share.
static inline float ck_n_inverse(float ss, long D, float eps) { return 1.0f / sqrtf(ss / (float)D + eps); }

void ck_rmsnorm_rows_ref(const float *x, const float *w, float eps, long T, long D, float *y) {
    const long D8 = D - D % CK_N_LANES;
    for (long t = 0; t < T; t++) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        float acc[CK_N_LANES] = {0};
        for (long i = 0; i < D8; i += CK_N_LANES)
            for (int l = 0; l < CK_N_LANES; l++) acc[l] = acc[l] + xr[i + l] * xr[i + l];
        for (long i = D8; i < D; i++) acc[i - D8] = acc[i - D8] + xr[i] * xr[i];
        const float r = ck_n_inverse(ck_n_tree(acc), D, eps);
        for (long i = 0; i < D; i++) yr[i] = w[i] * (xr[i] * r);
    }
}

void ck_rmsnorm_backward_rows_ref(const float *x, const float *w, float eps, const float *dy, long T, long D, float *dx) {
    const long D8 = D - D % CK_N_LANES;
    for (long t = 0; t < T; t++) {
        const float *xr = x + t * D, *dyr = dy + t * D;
        float *dxr = dx + t * D;
        float ss[CK_N_LANES] = {0}, gx[CK_N_LANES] = {0};
        for (long i = 0; i < D8; i += CK_N_LANES)
            for (int l = 0; l < CK_N_LANES; l++) {
                ss[l] = ss[l] + xr[i + l] * xr[i + l];
                gx[l] = gx[l] + (w[i + l] * dyr[i + l]) * xr[i + l];
            }
        for (long i = D8; i < D; i++) {
            ss[i - D8] = ss[i - D8] + xr[i] * xr[i];
            gx[i - D8] = gx[i - D8] + (w[i] * dyr[i]) * xr[i];
        }
        const float r = ck_n_inverse(ck_n_tree(ss), D, eps);
        const float c = ((r * r) * r) * ck_n_tree(gx) / (float)D;
        for (long i = 0; i < D; i++) dxr[i] = dxr[i] + ((r * w[i]) * dyr[i] - xr[i] * c);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>


__attribute__((target("avx2")))
static void ck_rmsnorm_rows_avx2(const float *x, const float *w, float eps, long T, long D, float *y) {
    const long D8 = D - D % CK_N_LANES;
    for (long t = 0; t < T; t++) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        __m256 acc = _mm256_setzero_ps();
        for (long i = 0; i < D8; i += CK_N_LANES) {
            const __m256 v = _mm256_loadu_ps(xr + i);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(v, v));
        }
        float l[CK_N_LANES];
        _mm256_storeu_ps(l, acc);
        for (long i = D8; i < D; i++) l[i - D8] = l[i - D8] + xr[i] * xr[i];
        const float r = ck_n_inverse(ck_n_tree(l), D, eps);
        const __m256 vr = _mm256_set1_ps(r);
        for (long i = 0; i < D8; i += CK_N_LANES)
            _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(xr + i), vr)));
        for (long i = D8; i < D; i++) yr[i] = w[i] * (xr[i] * r);
    }
}

__attribute__((target("avx2")))
static void ck_rmsnorm_backward_rows_avx2(const float *x, const float *w, float eps, const float *dy, long T, long D,
                                          float *dx) {
    const long D8 = D - D % CK_N_LANES;
    for (long t = 0; t < T; t++) {
        const float *xr = x + t * D, *dyr = dy + t * D;
        float *dxr = dx + t * D;
        __m256 ss = _mm256_setzero_ps(), gx = _mm256_setzero_ps();
        for (long i = 0; i < D8; i += CK_N_LANES) {
            const __m256 v = _mm256_loadu_ps(xr + i);
            ss = _mm256_add_ps(ss, _mm256_mul_ps(v, v));
            gx = _mm256_add_ps(gx, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(dyr + i)), v));
        }
        float ls[CK_N_LANES], lg[CK_N_LANES];
        _mm256_storeu_ps(ls, ss);
        _mm256_storeu_ps(lg, gx);
        for (long i = D8; i < D; i++) {
            ls[i - D8] = ls[i - D8] + xr[i] * xr[i];
            lg[i - D8] = lg[i - D8] + (w[i] * dyr[i]) * xr[i];
        }
        const float r = ck_n_inverse(ck_n_tree(ls), D, eps);
        const float c = ((r * r) * r) * ck_n_tree(lg) / (float)D;
        const __m256 vr = _mm256_set1_ps(r), vc = _mm256_set1_ps(c);
        for (long i = 0; i < D8; i += CK_N_LANES) {
            const __m256 g = _mm256_mul_ps(_mm256_mul_ps(vr, _mm256_loadu_ps(w + i)), _mm256_loadu_ps(dyr + i));
            const __m256 d = _mm256_sub_ps(g, _mm256_mul_ps(_mm256_loadu_ps(xr + i), vc));
            _mm256_storeu_ps(dxr + i, _mm256_add_ps(_mm256_loadu_ps(dxr + i), d));
        }
        for (long i = D8; i < D; i++) dxr[i] = dxr[i] + ((r * w[i]) * dyr[i] - xr[i] * c);
    }
}
#endif

void ck_rmsnorm_rows(const float *x, const float *w, float eps, long T, long D, float *y) {
#if defined(__x86_64__)
    static int avx2 = -1;   // a benign race: every thread computes the same answer
    if (avx2 < 0) avx2 = ck_cpu_has_avx2_fma();
    if (avx2) { ck_rmsnorm_rows_avx2(x, w, eps, T, D, y); return; }
#endif
    ck_rmsnorm_rows_ref(x, w, eps, T, D, y);
}

void ck_rmsnorm_backward_rows(const float *x, const float *w, float eps, const float *dy, long T, long D, float *dx) {
#if defined(__x86_64__)
    static int avx2 = -1;   // a benign race: every thread computes the same answer
    if (avx2 < 0) avx2 = ck_cpu_has_avx2_fma();
    if (avx2) { ck_rmsnorm_backward_rows_avx2(x, w, eps, dy, T, D, dx); return; }
#endif
    ck_rmsnorm_backward_rows_ref(x, w, eps, dy, T, D, dx);
}
