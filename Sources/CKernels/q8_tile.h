// The integer-dot row kernels of q8_rows_avx2.c and q8_rows_vnni.c: one body, included by each file
// under its own target attribute (`#pragma clang attribute`) with CK_Q8_VNNI 0 or 1 and CK_Q8_PAIR_MAX
// (the largest input tile a pair of weight rows takes together: what the register file holds).
// Their portable twin is `ck_q8_rows_ref` in q8_rows.c; the arithmetic is described in CKernels.h.
#ifndef CK_Q8_TILE_H
#define CK_Q8_TILE_H
#include "CKernels.h"
#include <immintrin.h>

#define CK_Q8_IN static inline __attribute__((always_inline))

/// The f16 at p in all 8 lanes (exact).
CK_Q8_IN __m256 ck8_half8(const uint8_t *p) {
    uint16_t h;
    __builtin_memcpy(&h, p, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}

/// 8 int32 lanes, lane l = Σ u[i] * s[i] over bytes i = 4l..4l+3 (u unsigned, s signed), exact.
/// AVX2: `maddubs` adds adjacent u8·s8 products into int16 with saturation, which never happens here:
/// Q4_1 |15 · 127| · 2 = 3,810; Q8_0 (sign trick, |w| <= 128) |128 · 127| · 2 = 32,512 < 32,767.
/// VNNI: `vpdpbusd` adds the 4 products into int32 directly (no int16 step). Same integers either way.
CK_Q8_IN __m256i ck8_dot(__m256i u, __m256i s) {
#if CK_Q8_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/// A weight block unpacked once for every input of a tile: the 32 unsigned bytes `u` fed to ck8_dot (Q4_1:
/// nibbles 0..15 in element order; Q8_0: |q|), the raw q (Q8_0: its signs go onto the activations, so
/// |w| · sign(w)·a = w·a), the scale d and (Q4_1) the min m in 8 lanes.
struct ck8_wblock { __m256i u, raw; __m256 d, m; };

CK_Q8_IN void ck8_unpack(int fmt, const uint8_t *p, struct ck8_wblock *w) {
    w->d = ck8_half8(p);
    if (fmt == CK_Q8_FMT_Q4_1) {
        w->m = ck8_half8(p + 2);
        const __m128i qs = _mm_loadu_si128((const __m128i *)(p + 4));
        const __m128i mask = _mm_set1_epi8(0x0F);
        const __m128i lo = _mm_and_si128(qs, mask);                      // elements 0..15
        const __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);   // elements 16..31
        w->u = _mm256_set_m128i(hi, lo);
        w->raw = w->u;
    } else {
        w->m = _mm256_setzero_ps();
        w->raw = _mm256_loadu_si256((const __m256i *)(p + 2));
        w->u = _mm256_abs_epi8(w->raw);   // |-128| = 128 as an unsigned byte
    }
}

/// Horizontal sum in a fixed order: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
CK_Q8_IN float ck8_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/// A register tile: ROWS consecutive weight rows against TT quantized inputs. Per (t, r), block by block:
/// acc = fma(d_w · d_a, float(isum), acc), then (Q4_1) acc = fma(m_w, s_a, acc), lane by lane; then
/// the fixed horizontal sum. The same operations in the same order whatever ROWS, TT or the tiling.
CK_Q8_IN void ck8_tile(int fmt, int ROWS, int TT, const uint8_t *pa, long bpr, const int8_t *xq, const float *xd,
                       const float *xs, long K, float *y, long ldy, long r, int accumulate) {
    const long bb = fmt == CK_Q8_FMT_Q4_1 ? 20 : 34;
    __m256 acc[2][8];
#pragma clang loop unroll(full)
    for (int i = 0; i < ROWS; i++)
#pragma clang loop unroll(full)
        for (int t = 0; t < TT; t++) acc[i][t] = _mm256_setzero_ps();
    for (long b = 0; b < bpr; b++) {
        struct ck8_wblock w[2];
#pragma clang loop unroll(full)
        for (int i = 0; i < ROWS; i++) ck8_unpack(fmt, pa + i * bpr * bb + b * bb, &w[i]);
#pragma clang loop unroll(full)
        for (int t = 0; t < TT; t++) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)(xq + t * K + b * 32));
            const __m256 da = _mm256_broadcast_ss(xd + t * bpr + b);
#pragma clang loop unroll(full)
            for (int i = 0; i < ROWS; i++) {
                const __m256i sa = fmt == CK_Q8_FMT_Q4_1 ? a : _mm256_sign_epi8(a, w[i].raw);
                const __m256 isum = _mm256_cvtepi32_ps(ck8_dot(w[i].u, sa));
                acc[i][t] = _mm256_fmadd_ps(_mm256_mul_ps(w[i].d, da), isum, acc[i][t]);
                if (fmt == CK_Q8_FMT_Q4_1)
                    acc[i][t] = _mm256_fmadd_ps(w[i].m, _mm256_loadu_ps(xs + (t * bpr + b) * 8), acc[i][t]);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < TT; t++)
#pragma clang loop unroll(full)
        for (int i = 0; i < ROWS; i++) {
            float *yp = y + t * ldy + r + i;
            const float v = ck8_hsum(acc[i][t]);
            *yp = accumulate ? *yp + v : v;
        }
}

#define CK8_TILE_ARGS pa, bpr, xq + t0 * K, xd + t0 * bpr, xs + t0 * bpr * 8, K, y + t0 * ldy, ldy

/// ck8_tile with a run-time input count 1 <= tn <= 8.
CK_Q8_IN void ck8_tile_n(int fmt, int ROWS, long tn, const uint8_t *pa, long bpr, const int8_t *xq, const float *xd,
                         const float *xs, long K, float *y, long ldy, long r, int accumulate) {
    switch (tn) {
    case 1: ck8_tile(fmt, ROWS, 1, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    case 2: ck8_tile(fmt, ROWS, 2, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    case 3: ck8_tile(fmt, ROWS, 3, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    case 4: ck8_tile(fmt, ROWS, 4, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    case 5: ck8_tile(fmt, ROWS, 5, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    case 6: ck8_tile(fmt, ROWS, 6, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    case 7: ck8_tile(fmt, ROWS, 7, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    default: ck8_tile(fmt, ROWS, 8, pa, bpr, xq, xd, xs, K, y, ldy, r, accumulate); break;
    }
}

/// The driver (as `ck_rows` in quant_rows.c): weight rows two at a time (the odd last one alone), inputs in
/// tiles of up to 8; a pair takes a tile together up to `pairMax` inputs, row by row beyond.
CK_Q8_IN void ck8_rows(int fmt, int pairMax, const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq,
                       const float *xd, const float *xs, long T, float *y, long ldy, int accumulate) {
    const long K = bpr * 32, rowBytes = bpr * (fmt == CK_Q8_FMT_Q4_1 ? 20 : 34);
    long r = r0;
    if (T == 1) {
        for (; r + 1 < r1; r += 2) ck8_tile(fmt, 2, 1, blocks + r * rowBytes, bpr, xq, xd, xs, K, y, ldy, r, accumulate);
        if (r < r1) ck8_tile(fmt, 1, 1, blocks + r * rowBytes, bpr, xq, xd, xs, K, y, ldy, r, accumulate);
        return;
    }
    for (; r + 1 < r1; r += 2) {
        const uint8_t *pa = blocks + r * rowBytes;
        for (long t0 = 0; t0 < T; t0 += 8) {
            const long tn = T - t0 < 8 ? T - t0 : 8;
            if (tn <= pairMax) {
                ck8_tile_n(fmt, 2, tn, CK8_TILE_ARGS, r, accumulate);
            } else {
                ck8_tile_n(fmt, 1, tn, CK8_TILE_ARGS, r, accumulate);
                ck8_tile_n(fmt, 1, tn, pa + rowBytes, bpr, xq + t0 * K, xd + t0 * bpr, xs + t0 * bpr * 8, K, y + t0 * ldy, ldy,
                           r + 1, accumulate);
            }
        }
    }
    for (; r < r1; r++) {
        const uint8_t *pa = blocks + r * rowBytes;
        for (long t0 = 0; t0 < T; t0 += 8) ck8_tile_n(fmt, 1, T - t0 < 8 ? T - t0 : 8, CK8_TILE_ARGS, r, accumulate);
    }
}

#endif
