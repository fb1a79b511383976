// One decode row's attention for one head against its sequence's cached keys (see CKernels.h,
// `ck_attention_row`): scores, the project's one softmax (`ck_softmax`), the weighted sum of values.
//
// A plain C body and an AVX2 one, chosen at run time, with the same arithmetic (-ffp-contract=off:
// multiplies and adds never fused): a score is 8 lanes of products in order plus a fixed tree, a
// value element one running sum over the keys in order. So a row's bits depend on its own query,
// keys and values only: not on the CPU's vector width, nor on which other rows share the step.
#include "CKernels.h"

#define CK_ATT_LANES 8

/// The tail and the reduction shared by both builds: the tail k >= K8 goes to lane k - K8, then the
/// 8 lane sums in a fixed tree.
static inline __attribute__((always_inline)) float ck_att_dot_finish(float acc[CK_ATT_LANES], const float *q,
                                                                     const float *k, long K8, long E) {
    for (long e = K8; e < E; e++) acc[e - K8] += q[e] * k[e];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/// q · k over E: lane l accumulates the products e ≡ l (mod 8), e < K8 = 8 * (E / 8), in order.
static inline __attribute__((always_inline)) float ck_att_dot(const float *q, const float *k, long E) {
    float acc[CK_ATT_LANES] = {0};
    const long K8 = E - E % CK_ATT_LANES;
    for (long e = 0; e < K8; e += CK_ATT_LANES)
        for (int l = 0; l < CK_ATT_LANES; l++) acc[l] += q[e + l] * k[e + l];
    return ck_att_dot_finish(acc, q, k, K8, E);
}

/// scores[j] = scale * (q · K[j]) for lo <= j < S; K rows ldk apart.
static void ck_att_scores_base(const float *q, const float *K, long ldk, long E, long lo, long S, float scale,
                               float *scores) {
    for (long j = lo; j < S; j++) scores[j] = scale * ck_att_dot(q, K + j * ldk, E);
}

/// out[e] = Σ_j p[j] * V[j, e] over lo <= j < S in order of j (from 0, multiply then add).
static void ck_att_values_base(const float *p, const float *V, long ldv, long E, long lo, long S, float *out) {
    for (long e = 0; e < E; e++) out[e] = 0;
    for (long j = lo; j < S; j++) {
        const float pj = p[j];
        const float *vj = V + j * ldv;
        for (long e = 0; e < E; e++) out[e] += pj * vj[e];
    }
}

static float ck_attention_row_base(const float *q, const float *K, const float *V, long ldk, long E, long lo, long S,
                                   float scale, float *scores, float *out, int simdSoftmax) {
    ck_att_scores_base(q, K, ldk, E, lo, S, scale, scores);
    const float lse = simdSoftmax ? ck_softmax(scores + lo, S - lo) : ck_softmax_ref(scores + lo, S - lo);
    ck_att_values_base(scores, V, ldk, E, lo, S, out);
    return lse;
}

#if defined(__x86_64__)
#include <immintrin.h>

/// `ck_att_dot` with the 8 lanes in one AVX register: the same multiplies and adds per lane.
__attribute__((target("avx2"), always_inline)) static inline float ck_att_dot_avx2(const float *q, const float *k, long E) {
    __m256 acc = _mm256_setzero_ps();
    const long K8 = E - E % CK_ATT_LANES;
    for (long e = 0; e < K8; e += CK_ATT_LANES)
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q + e), _mm256_loadu_ps(k + e)));
    float lanes[CK_ATT_LANES];
    _mm256_storeu_ps(lanes, acc);
    return ck_att_dot_finish(lanes, q, k, K8, E);
}

/// The 8 keys' lane sums a0...a7 reduced each by `ck_att_dot_finish`'s tree (no tail), in registers:
/// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) per key, the same adds in the same association;
/// returned times scale, key j in lane j.
__attribute__((target("avx2"), always_inline)) static inline __m256 ck_att_tree8(__m256 a0, __m256 a1, __m256 a2, __m256 a3,
                                                                                __m256 a4, __m256 a5, __m256 a6, __m256 a7,
                                                                                __m256 scale) {
    // b: lanes l + l4 of two keys side by side: [key x: b0 b1 b2 b3 | key y: b0 b1 b2 b3].
    const __m256 b01 = _mm256_add_ps(_mm256_permute2f128_ps(a0, a1, 0x20), _mm256_permute2f128_ps(a0, a1, 0x31));
    const __m256 b23 = _mm256_add_ps(_mm256_permute2f128_ps(a2, a3, 0x20), _mm256_permute2f128_ps(a2, a3, 0x31));
    const __m256 b45 = _mm256_add_ps(_mm256_permute2f128_ps(a4, a5, 0x20), _mm256_permute2f128_ps(a4, a5, 0x31));
    const __m256 b67 = _mm256_add_ps(_mm256_permute2f128_ps(a6, a7, 0x20), _mm256_permute2f128_ps(a6, a7, 0x31));
    // c: (b0 + b2), (b1 + b3) of keys [0, 2 | 1, 3] and [4, 6 | 5, 7].
#define CK_LO(x, y) _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(x), _mm256_castps_pd(y)))
#define CK_HI(x, y) _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(x), _mm256_castps_pd(y)))
    const __m256 c0 = _mm256_add_ps(CK_LO(b01, b23), CK_HI(b01, b23));
    const __m256 c1 = _mm256_add_ps(CK_LO(b45, b67), CK_HI(b45, b67));
#undef CK_LO
#undef CK_HI
    // d: c0 + c1 of keys [0, 2, 4, 6 | 1, 3, 5, 7], then into key order.
    const __m256 d = _mm256_add_ps(_mm256_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_mul_ps(scale, _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/// Eight keys at a time when E has no tail (their trees in registers), else four (four independent
/// sums, for the pipeline); each key's sum as `ck_att_dot`.
__attribute__((target("avx2")))
static void ck_att_scores_avx2(const float *q, const float *K, long ldk, long E, long lo, long S, float scale,
                               float *scores) {
    const long K8 = E - E % CK_ATT_LANES;
    long j = lo;
    if (K8 == E) {
        const __m256 vs = _mm256_set1_ps(scale);
        for (; j + 8 <= S; j += 8) {
            const float *k0 = K + j * ldk;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (long e = 0; e < E; e += CK_ATT_LANES) {
                const __m256 qe = _mm256_loadu_ps(q + e);
                a0 = _mm256_add_ps(a0, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + e)));
                a1 = _mm256_add_ps(a1, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + ldk + e)));
                a2 = _mm256_add_ps(a2, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + 2 * ldk + e)));
                a3 = _mm256_add_ps(a3, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + 3 * ldk + e)));
                a4 = _mm256_add_ps(a4, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + 4 * ldk + e)));
                a5 = _mm256_add_ps(a5, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + 5 * ldk + e)));
                a6 = _mm256_add_ps(a6, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + 6 * ldk + e)));
                a7 = _mm256_add_ps(a7, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + 7 * ldk + e)));
            }
            _mm256_storeu_ps(scores + j, ck_att_tree8(a0, a1, a2, a3, a4, a5, a6, a7, vs));
        }
    }
    for (; j + 4 <= S; j += 4) {
        const float *k0 = K + j * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (long e = 0; e < K8; e += CK_ATT_LANES) {
            const __m256 qe = _mm256_loadu_ps(q + e);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(qe, _mm256_loadu_ps(k0 + e)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(qe, _mm256_loadu_ps(k1 + e)));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(qe, _mm256_loadu_ps(k2 + e)));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(qe, _mm256_loadu_ps(k3 + e)));
        }
        float l0[CK_ATT_LANES], l1[CK_ATT_LANES], l2[CK_ATT_LANES], l3[CK_ATT_LANES];
        _mm256_storeu_ps(l0, a0); _mm256_storeu_ps(l1, a1); _mm256_storeu_ps(l2, a2); _mm256_storeu_ps(l3, a3);
        scores[j] = scale * ck_att_dot_finish(l0, q, k0, K8, E);
        scores[j + 1] = scale * ck_att_dot_finish(l1, q, k1, K8, E);
        scores[j + 2] = scale * ck_att_dot_finish(l2, q, k2, K8, E);
        scores[j + 3] = scale * ck_att_dot_finish(l3, q, k3, K8, E);
    }
    for (; j < S; j++) scores[j] = scale * ck_att_dot_avx2(q, K + j * ldk, E);
}

/// `ck_att_values_base` with 64 (then 32, then 8) output elements in registers per pass over the keys:
/// each element's sum is the same multiplies and adds in the same order.
__attribute__((target("avx2")))
static void ck_att_values_avx2(const float *p, const float *V, long ldv, long E, long lo, long S, float *out) {
    long e0 = 0;
    for (; e0 + 64 <= E; e0 += 64) {
        __m256 o[8];
        for (int r = 0; r < 8; r++) o[r] = _mm256_setzero_ps();
        for (long j = lo; j < S; j++) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const float *vj = V + j * ldv + e0;
            for (int r = 0; r < 8; r++) o[r] = _mm256_add_ps(o[r], _mm256_mul_ps(pj, _mm256_loadu_ps(vj + 8 * r)));
        }
        for (int r = 0; r < 8; r++) _mm256_storeu_ps(out + e0 + 8 * r, o[r]);
    }
    for (; e0 + 32 <= E; e0 += 32) {
        __m256 o0 = _mm256_setzero_ps(), o1 = _mm256_setzero_ps(), o2 = _mm256_setzero_ps(), o3 = _mm256_setzero_ps();
        for (long j = lo; j < S; j++) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const float *vj = V + j * ldv + e0;
            o0 = _mm256_add_ps(o0, _mm256_mul_ps(pj, _mm256_loadu_ps(vj)));
            o1 = _mm256_add_ps(o1, _mm256_mul_ps(pj, _mm256_loadu_ps(vj + 8)));
            o2 = _mm256_add_ps(o2, _mm256_mul_ps(pj, _mm256_loadu_ps(vj + 16)));
            o3 = _mm256_add_ps(o3, _mm256_mul_ps(pj, _mm256_loadu_ps(vj + 24)));
        }
        _mm256_storeu_ps(out + e0, o0); _mm256_storeu_ps(out + e0 + 8, o1);
        _mm256_storeu_ps(out + e0 + 16, o2); _mm256_storeu_ps(out + e0 + 24, o3);
    }
    for (; e0 + 8 <= E; e0 += 8) {
        __m256 o = _mm256_setzero_ps();
        for (long j = lo; j < S; j++) o = _mm256_add_ps(o, _mm256_mul_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(V + j * ldv + e0)));
        _mm256_storeu_ps(out + e0, o);
    }
    for (long e = e0; e < E; e++) {
        float o = 0;
        for (long j = lo; j < S; j++) o += p[j] * V[j * ldv + e];
        out[e] = o;
    }
}

__attribute__((target("avx2")))
static float ck_attention_row_avx2(const float *q, const float *K, const float *V, long ldk, long E, long lo, long S,
                                   float scale, float *scores, float *out, int simdSoftmax) {
    ck_att_scores_avx2(q, K, ldk, E, lo, S, scale, scores);
    const float lse = simdSoftmax ? ck_softmax(scores + lo, S - lo) : ck_softmax_ref(scores + lo, S - lo);
    ck_att_values_avx2(scores, V, ldk, E, lo, S, out);
    return lse;
}
#endif

float ck_attention_row(const float *q, const float *K, const float *V, long ldk, long E, long lo, long S,
                       float scale, float *scores, float *out, int simdSoftmax) {
#if defined(__x86_64__)
    static int avx2 = -1;   // a benign race: every thread computes the same answer
    if (avx2 < 0) avx2 = ck_cpu_has_avx2_fma();
    if (avx2) return ck_attention_row_avx2(q, K, V, ldk, E, lo, S, scale, scores, out, simdSoftmax);
#endif
    return ck_attention_row_base(q, K, V, ldk, E, lo, S, scale, scores, out, simdSoftmax);
}

float ck_attention_row_portable(const float *q, const float *K, const float *V, long ldk, long E, long lo, long S,
                                float scale, float *scores, float *out, int simdSoftmax) {
    return ck_attention_row_base(q, K, V, ldk, E, lo, S, scale, scores, out, simdSoftmax);
}
