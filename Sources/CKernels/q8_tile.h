// The integer-dot row kernels of q8_rows_avx2.c and q8_rows_vnni.c: one body, included by each file
// under its own target attribute (`#pragma clang attribute`) with CK_Q8_VNNI 0 or 1.
// Their portable twin is `ck_q8_rows_ref` in q8_rows.c; the arithmetic is described in CKernels.h.
//
// Inputs have one digit (int8, `ck_q8_quantize_rows`) or two (`ck_q8x2_quantize_rows`: per block the high
// digits' 32 bytes then the low digits' 32, rows 2K bytes apart); with two, each weight block is dotted with
// both digits (the same unpacked weight) and the two block sums are combined exactly in int32 as
// (hi << 8) + lo before the same float work. `digits` is a compile-time constant at every call.
//
// The VNNI build takes row-lane tiles (ck8_rowlane_q4_1, ck8_rowlane_q8_0): one vector per input whose lanes
// are 16 or 8 weight rows, the weight bytes transposed in registers, no horizontal sums (see there); and for
// one input on Q8_0 the 8-output tile below. The AVX2 build takes the 8-output and wide tiles below.
//
// An 8-output tile is 8 outputs (t, r) at once: TT inputs x RR = 8 / TT weight rows (2 x 4, 1 x 8), for groups
// of 1 or 2 inputs. In the AVX2 build groups of 3 or more take wide tiles (ck8_wide): several (TT = 4, RR = 2)-
// shaped 8-output tiles in one pass over the blocks, so each weight block is unpacked once for 4 or 8 inputs and
// each activation load serves 4 weight rows.
// Per block, the 8 integer dots are computed two outputs per vector (one per 128-bit half, each half's 4
// int32 lanes covering the block's 32 products) and reduced to ONE vector holding the 8 exact block sums
// (3 hadds), and the float work is done once for the 8 outputs in that vector:
// p = (d_w * d_a) * float(isum), then (Q4_1) p = fma(m_w, s_a, p), acc = acc + p. Each lane of acc is one
// output's scalar chain, so there is no horizontal sum at the end and the bits are those of the portable
// twin whatever the tile shape, the row count T or the split of the weight rows.
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

/// Two dots into one vector: lane l = Σ u1[i]·s1[i] + u2[i]·s2[i] over bytes i = 4l..4l+3, exact (ck8_dot).
CK_Q8_IN __m256i ck8_dot2(__m256i u1, __m256i s1, __m256i u2, __m256i s2) {
#if CK_Q8_VNNI
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u1, s1), u2, s2);
#else
    return _mm256_add_epi32(ck8_dot(u1, s1), ck8_dot(u2, s2));
#endif
}

/// Lane l < 4 of the result = the sum of p[l]'s 4 low lanes, lane 4 + l = the sum of its 4 high lanes: each
/// p[l] holds two outputs' partial sums, one per 128-bit half (exact, so the order of the additions does not
/// matter). hadd(a, b) = per 128-bit half [a0+a1, a2+a3, b0+b1, b2+b3]; two levels of it, 3 instructions
/// for 8 outputs.
CK_Q8_IN __m256i ck8_reduce4(const __m256i p[4]) {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
}

/// The 4 bytes at p as an int (unaligned).
CK_Q8_IN int ck8_dword(const uint8_t *p) {
    int v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/// Two weight blocks' operands for ck8_dot2, block lo in the low 128 bits and block hi in the high ones (the
/// same block twice is allowed): u1 / raw1 the elements 0..15, u2 / raw2 the elements 16..31. Q4_1: the nibbles
/// 0..15 (elements i and 16 + i share byte i: low nibble, high nibble); Q8_0: the raw q (signs, see ck8_sgn)
/// and |q|.
struct ck8_wpair { __m256i u1, u2, raw1, raw2; };

CK_Q8_IN void ck8_unpack2(int fmt, const uint8_t *lo, const uint8_t *hi, struct ck8_wpair *w) {
    if (fmt == CK_Q8_FMT_Q4_1) {
        const __m256i qs = _mm256_loadu2_m128i((const __m128i *)(hi + 4), (const __m128i *)(lo + 4));
        const __m256i mask = _mm256_set1_epi8(0x0F);
        w->u1 = _mm256_and_si256(qs, mask);
        w->u2 = _mm256_and_si256(_mm256_srli_epi16(qs, 4), mask);
        w->raw1 = w->u1;
        w->raw2 = w->u2;
    } else {
        w->raw1 = _mm256_loadu2_m128i((const __m128i *)(hi + 2), (const __m128i *)(lo + 2));
        w->raw2 = _mm256_loadu2_m128i((const __m128i *)(hi + 18), (const __m128i *)(lo + 18));
        w->u1 = _mm256_abs_epi8(w->raw1);   // |-128| = 128 as an unsigned byte
        w->u2 = _mm256_abs_epi8(w->raw2);
    }
}

/// The activation bytes as ck8_dot's signed operand: Q4_1 as they are; Q8_0 with the weight's signs moved
/// onto them (|w| · sign(w)·a = w·a; a is never -128, so the negation is exact).
CK_Q8_IN __m256i ck8_sgn(int fmt, __m256i a, __m256i raw) {
    return fmt == CK_Q8_FMT_Q4_1 ? a : _mm256_sign_epi8(a, raw);
}

/// The 16 bytes at p in both 128-bit halves.
CK_Q8_IN __m256i ck8_bcast16(const int8_t *p) { return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p)); }

/// The 8 activation scales of a block in the tile's lane order (lane j = i * TT + t, input t of TT = 1, 2 or
/// 4): the TT consecutive floats at p repeated 8 / TT times.
CK_Q8_IN __m256 ck8_lanes(int TT, const float *p) {
    if (TT == 4) return _mm256_broadcast_ps((const __m128 *)p);
    if (TT == 2) return _mm256_castpd_ps(_mm256_broadcast_sd((const double *)p));
    return _mm256_broadcast_ss(p);
}

/// Q8_0 in the VNNI build's 8-output tiles (one input) without a `vpsignb` per dot, where the correction below is
/// shared by two dots or more per weight pair (two-digit inputs): the activations as unsigned bytes a + 128 (a ^ 0x80; a is never
/// -128, so 1..255) against the signed weights, the dot's accumulator started at -128 · Σ w (one `vpdpbusd` pair
/// per weight block): Σ (a + 128)·w - 128·Σ w = Σ a·w, exact in int32 (|.| <= 32 · 255 · 128), the same
/// integers. Measured on this Zen 4: 1.04-1.1x at T = 1 (two digits), 0.98x at T = 1 with one digit (so not
/// there). (The row-lane tiles flip the other operand instead: ck8_lane_corr.) Not in the AVX2 build: `maddubs` would saturate
/// (2 · 255 · 128 > 32,767). -DCK_Q8_OFFSET=0 turns it off (for measuring only).
#ifndef CK_Q8_OFFSET
#define CK_Q8_OFFSET CK_Q8_VNNI
#endif

/// -128 · Σ w over each 128-bit half's 16 + 16 weight bytes of w (raw1, raw2), as int32 lanes whose sum per half
/// is that block's correction (exact: |.| <= 32 · 128 · 128).
CK_Q8_IN __m256i ck8_offset_base(const struct ck8_wpair *w) {
#if CK_Q8_VNNI
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    return _mm256_sub_epi32(_mm256_setzero_si256(), ck8_dot2(flip, w->raw1, flip, w->raw2));
#else
    (void)w;
    return _mm256_setzero_si256();
#endif
}

/// base + Σ (a ^ 0x80) · raw over the 32 bytes of (a1, a2) against (raw1, raw2) = Σ a · raw per half (see above).
CK_Q8_IN __m256i ck8_offset_dot(__m256i base, __m256i a1, __m256i a2, const struct ck8_wpair *w) {
#if CK_Q8_VNNI
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(base, _mm256_xor_si256(a1, flip), w->raw1), _mm256_xor_si256(a2, flip), w->raw2);
#else
    (void)a1; (void)a2; (void)w;
    return base;
#endif
}

/// One tile: TT = 1 or 2 inputs (rows t0..t0+TT-1 of the group whose quantized rows start at xq, whose scales and
/// sums start at xd, xs) against RR = 8 / TT weight rows starting at pa; rn <= RR of those rows and tn <= TT
/// of the inputs are stored (the others are computed on row pa's data or on the zero padding of the group
/// and dropped). y points at output (t0, r). Input rows are digits * K bytes apart, a block digits * 32.
CK_Q8_IN void ck8_tile(int fmt, int digits, int TT, const uint8_t *pa, long bpr, long rowBytes, long rn, const int8_t *xq,
                       const float *xd, const float *xs, long K, float *y, long ldy, long tn, int accumulate) {
    const int RR = 8 / TT;
    const long bb = fmt == CK_Q8_FMT_Q4_1 ? 20 : 34;
    const uint8_t *rows[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < RR; i++) rows[i] = pa + (i < rn ? i : rn - 1) * rowBytes;
    const __m256i halves = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    __m256 acc = _mm256_setzero_ps();
    for (long b = 0; b < bpr; b++) {
        // The next tile's weight rows (they follow these), this block's share of them: 8 weight rows
        // streamed side by side are more than the hardware prefetcher follows (T = 1 read 1.5x slower).
        // A prefetch past the weight's end is harmless (it never faults).
        const char *next = (const char *)pa + RR * rowBytes + b * RR * bb;
#pragma clang loop unroll(full)
        for (int o = 0; o < RR * bb; o += 64) _mm_prefetch(next + o, _MM_HINT_T0);
        // Pair k (k < 4) holds output lane k in its low 128 bits and lane k + 4 in its high ones (lane
        // j = i * TT + t): weight rows i and i + RR / 2 against input t. Each half's 4 int32 lanes sum to its
        // output's block dot.
        __m256i v[4], vl[4];
#pragma clang loop unroll(full)
        for (int i = 0; i < RR / 2; i++) {
            struct ck8_wpair w;
            ck8_unpack2(fmt, rows[i] + b * bb, rows[i + RR / 2] + b * bb, &w);
            if (CK_Q8_OFFSET && fmt == CK_Q8_FMT_Q8_0 && digits == 2) {
                const __m256i base = ck8_offset_base(&w);
#pragma clang loop unroll(full)
                for (int t = 0; t < TT; t++) {
                    const int8_t *a = xq + (t * K + b * 32) * 2;
                    v[i * TT + t] = ck8_offset_dot(base, ck8_bcast16(a), ck8_bcast16(a + 16), &w);
                    vl[i * TT + t] = ck8_offset_dot(base, ck8_bcast16(a + 32), ck8_bcast16(a + 48), &w);
                }
                continue;
            }
#pragma clang loop unroll(full)
            for (int t = 0; t < TT; t++) {
                const int8_t *a = xq + (t * K + b * 32) * digits;
                v[i * TT + t] = ck8_dot2(w.u1, ck8_sgn(fmt, ck8_bcast16(a), w.raw1), w.u2, ck8_sgn(fmt, ck8_bcast16(a + 16), w.raw2));
                if (digits == 2)
                    vl[i * TT + t] = ck8_dot2(w.u1, ck8_sgn(fmt, ck8_bcast16(a + 32), w.raw1),
                                              w.u2, ck8_sgn(fmt, ck8_bcast16(a + 48), w.raw2));
            }
        }
        // One digit: |isum| < 2^24, exact. Two: (hi << 8) + lo exact in int32 (CKernels.h: |.| < 2^27), and
        // float() exact below 2^24 (Q4_1 always), else one rounding to nearest even (Q8_0), as the twin's cast.
        __m256i is = ck8_reduce4(v);
        if (digits == 2) is = _mm256_add_epi32(_mm256_slli_epi32(is, 8), ck8_reduce4(vl));
        const __m256 isum = _mm256_cvtepi32_ps(is);
        __m256 dw, mw;
        // The first dword of each lane's row block (f16 d | f16 m or 2 q bytes) by scalar loads
        // (`vpgatherdd` made these tiles up to 1.4x slower here), then d of the 8 lanes in the low 128
        // bits and the second halves (Q4_1: m) in the high 128 bits.
#define CK8_DW(j) ck8_dword(rows[(j) / TT] + b * bb)
        const __m256i g = _mm256_setr_epi32(CK8_DW(0), CK8_DW(1), CK8_DW(2), CK8_DW(3), CK8_DW(4), CK8_DW(5),
                                            CK8_DW(6), CK8_DW(7));
#undef CK8_DW
        const __m256i h = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(g, halves), 0xD8);
        dw = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
        mw = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
        __m256 p = _mm256_mul_ps(_mm256_mul_ps(dw, ck8_lanes(TT, xd + b * 8)), isum);
        if (fmt == CK_Q8_FMT_Q4_1) p = _mm256_fmadd_ps(mw, ck8_lanes(TT, xs + b * 8), p);
        acc = _mm256_add_ps(acc, p);   // the only operation on acc: one add of latency per block
    }
    float out[8];
    _mm256_storeu_ps(out, acc);
    for (long i = 0; i < rn; i++)
        for (long t = 0; t < tn; t++) {
            float *yp = y + t * ldy + i;
            *yp = accumulate ? *yp + out[i * TT + t] : out[i * TT + t];
        }
}

#if !CK_Q8_VNNI
/// A wide tile (the AVX2 build): 4H inputs (H = 1: inputs 0..3 of the group; 2: 0..7) by 2P weight rows (P pairs, pair p = rows
/// 2p and 2p + 1 in the low and high 128 bits), H · P sub-tiles of 8 outputs in one pass over the blocks, so
/// each weight block is unpacked once for all 4H inputs and each activation load (a `vbroadcasti128`) serves
/// 2P weight rows. Sub-tile (h, p) is laid out as ck8_tile's (TT = 4, RR = 2) tile: lane j = i · 4 + t holds
/// output (input 4h + t, row 2p + i), and gets the same float work (so the same bits). rn <= 2P rows and
/// tn <= 4H inputs are stored (the others computed on row pa's data or the group's zero padding and dropped).
CK_Q8_IN void ck8_wide(int fmt, int digits, int H, int P, const uint8_t *pa, long bpr, long rowBytes, long rn,
                       const int8_t *xq, const float *xd, const float *xs, long K, float *y, long ldy, long tn,
                       int accumulate) {
    const long bb = fmt == CK_Q8_FMT_Q4_1 ? 20 : 34;
    const uint8_t *rows[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < 2 * P; i++) rows[i] = pa + (i < rn ? i : rn - 1) * rowBytes;
    __m256 acc[2][4];
#pragma clang loop unroll(full)
    for (int h = 0; h < H; h++)
#pragma clang loop unroll(full)
        for (int p = 0; p < P; p++) acc[h][p] = _mm256_setzero_ps();
    for (long b = 0; b < bpr; b++) {
        // The next tile's rows, this block's share of them (as ck8_tile).
        const char *next = (const char *)pa + 2 * P * rowBytes + b * 2 * P * bb;
#pragma clang loop unroll(full)
        for (int o = 0; o < 2 * P * bb; o += 64) _mm_prefetch(next + o, _MM_HINT_T0);
        struct ck8_wpair w[4];
        __m256 dw[4], mw[4];
#pragma clang loop unroll(full)
        for (int p = 0; p < P; p++) {
            const uint8_t *lo = rows[2 * p] + b * bb, *hi = rows[2 * p + 1] + b * bb;
            ck8_unpack2(fmt, lo, hi, &w[p]);
            dw[p] = _mm256_blend_ps(ck8_half8(lo), ck8_half8(hi), 0xF0);
            mw[p] = fmt == CK_Q8_FMT_Q4_1 ? _mm256_blend_ps(ck8_half8(lo + 2), ck8_half8(hi + 2), 0xF0) : _mm256_setzero_ps();
        }
#pragma clang loop unroll(full)
        for (int h = 0; h < H; h++) {
            // v[p][t]: pair p against input 4h + t, one output per 128-bit half (its 4 int32 lanes sum to the
            // block dot), digit by digit (g = 0 the high or only one), each reduced at once to is[p] (fewer
            // live registers than both digits' dots at once).
            __m256i is[4];
#pragma clang loop unroll(full)
            for (int g = 0; g < digits; g++) {
                __m256i v[4][4];
#pragma clang loop unroll(full)
                for (int t = 0; t < 4; t++) {
                    const int8_t *a = xq + ((4 * h + t) * K + b * 32) * digits + 32 * g;
                    const __m256i a1 = ck8_bcast16(a), a2 = ck8_bcast16(a + 16);
#pragma clang loop unroll(full)
                    for (int p = 0; p < P; p++)
                        v[p][t] = ck8_dot2(w[p].u1, ck8_sgn(fmt, a1, w[p].raw1), w[p].u2, ck8_sgn(fmt, a2, w[p].raw2));
                }
                // The exact block sums of ck8_tile: two digits as (hi << 8) + lo.
#pragma clang loop unroll(full)
                for (int p = 0; p < P; p++)
                    is[p] = g == 0 ? ck8_reduce4(v[p]) : _mm256_add_epi32(_mm256_slli_epi32(is[p], 8), ck8_reduce4(v[p]));
            }
            const __m256 da = ck8_lanes(4, xd + b * 8 + 4 * h);
            const __m256 sa = fmt == CK_Q8_FMT_Q4_1 ? ck8_lanes(4, xs + b * 8 + 4 * h) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
            for (int p = 0; p < P; p++) {
                // The float work of ck8_tile, lane for lane.
                __m256 pr = _mm256_mul_ps(_mm256_mul_ps(dw[p], da), _mm256_cvtepi32_ps(is[p]));
                if (fmt == CK_Q8_FMT_Q4_1) pr = _mm256_fmadd_ps(mw[p], sa, pr);
                acc[h][p] = _mm256_add_ps(acc[h][p], pr);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int h = 0; h < H; h++)
#pragma clang loop unroll(full)
        for (int p = 0; p < P; p++) {
            float out[8];
            _mm256_storeu_ps(out, acc[h][p]);
            for (long i = 0; i < 2; i++) {
                const long r = 2 * p + i;
                if (r >= rn) break;
                for (long t = 0; t < 4 && 4 * h + t < tn; t++) {
                    float *yp = y + (4 * h + t) * ldy + r;
                    *yp = accumulate ? *yp + out[i * 4 + t] : out[i * 4 + t];
                }
            }
        }
}

#endif

#if CK_Q8_VNNI
/// Row-lane tiles (the VNNI build): one accumulator vector per INPUT whose lanes are WEIGHT ROWS (Q4_1: 16 per
/// zmm; Q8_0: 8 per ymm), so the block dots need no horizontal sums. Per block, the rows' weight bytes are
/// transposed in registers (ck8_transpose4) into W[0..7], lane r of W[j] holding elements 4j..4j+3 of row r,
/// and each input's block dot is 8 `vpdpbusd` of W[j] against the input's activation dword j broadcast to all
/// lanes (an embedded broadcast from memory). The float work per block and output is the portable twin's:
/// p = (d_w · d_a) · float(isum), Q4_1 then p = fma(m_w, s_a, p), acc += p, one lane per output, so the bits
/// are the twin's whatever T, the row range or the tile.
/// Measured against the wide and 8-output tiles they replace (kernel alone, scripts/bench/q8rows.sh, this
/// Zen 4; see ck8_rows for the figures). zmm: on Zen 4 a 512-bit op is two 256-bit halves, but half the
/// instructions measured 1.2x faster than 8 ymm row lanes for Q4_1 (L2-resident and streamed weights alike);
/// for Q8_0 16 rows were up to 2x slower on weights streamed from memory (the output head), so 8 ymm rows.

/// The 4x4 dword transpose per 128-bit lane: y[k]'s 128-bit lane l holds the 4 dwords of row k + 4l; out[j]'s
/// dword 4l + k = dword j of row k + 4l (rows in order across the lanes). 8 shuffles.
CK_Q8_IN void ck8_transpose4(const __m256i y[4], __m256i out[4]) {
    const __m256i t0 = _mm256_unpacklo_epi32(y[0], y[1]), t1 = _mm256_unpacklo_epi32(y[2], y[3]);
    const __m256i t2 = _mm256_unpackhi_epi32(y[0], y[1]), t3 = _mm256_unpackhi_epi32(y[2], y[3]);
    out[0] = _mm256_unpacklo_epi64(t0, t1);
    out[1] = _mm256_unpackhi_epi64(t0, t1);
    out[2] = _mm256_unpacklo_epi64(t2, t3);
    out[3] = _mm256_unpackhi_epi64(t2, t3);
}

/// ck8_transpose4 on 4 128-bit lanes (16 rows).
CK_Q8_IN void ck8_transpose4z(const __m512i y[4], __m512i out[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(y[0], y[1]), t1 = _mm512_unpacklo_epi32(y[2], y[3]);
    const __m512i t2 = _mm512_unpackhi_epi32(y[0], y[1]), t3 = _mm512_unpackhi_epi32(y[2], y[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t1);
    out[1] = _mm512_unpackhi_epi64(t0, t1);
    out[2] = _mm512_unpacklo_epi64(t2, t3);
    out[3] = _mm512_unpackhi_epi64(t2, t3);
}

/// Whether a block dot runs as two chains of 4 `vpdpbusd` (even and odd j, added at the end) instead of one of
/// 8: for few inputs, where one chain per input leaves its latency exposed (measured 1.05-1.15x at T = 1..4 with
/// one digit; with more inputs or two digits there are chains enough, and the extra registers spilled).
#define CK8_SPLIT (digits == 1 && NT <= 4)

/// Lane r = init + Σ W[j] · a over the block's 32 elements (dword j of a broadcast), exact in int32
/// (|Σ| <= 32 · 255 · 127; init a correction, see ck8_lane_corr).
CK_Q8_IN __m256i ck8_lane_dot(const __m256i W[8], const int8_t *a, int split, __m256i init) {
    __m256i s[2] = {init, _mm256_setzero_si256()};
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++)
        s[split ? j & 1 : 0] = _mm256_dpbusd_epi32(s[split ? j & 1 : 0], W[j], _mm256_set1_epi32(ck8_dword((const uint8_t *)a + 4 * j)));
    return split ? _mm256_add_epi32(s[0], s[1]) : s[0];
}

/// ck8_lane_dot on 16 lanes, starting at 0.
CK_Q8_IN __m512i ck8_lane_dotz(const __m512i W[8], const int8_t *a, int split) {
    __m512i s[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++)
        s[split ? j & 1 : 0] = _mm512_dpbusd_epi32(s[split ? j & 1 : 0], W[j], _mm512_set1_epi32(ck8_dword((const uint8_t *)a + 4 * j)));
    return split ? _mm512_add_epi32(s[0], s[1]) : s[0];
}

/// Q8_0 against row lanes: the signed weights as unsigned bytes w + 128 (w ^ 0x80) against the signed
/// activations, so Σ (w + 128) · a = Σ w · a + 128 · Σ a, and the correction 128 · Σ a depends on the input and
/// the block only: its negation is computed once per call for every (input, block) by ck8_lane_corr and is
/// where the block's (last) dot chain starts (two digits: (hi' << 8) + (lo' - 128 · (256 Σ a_hi + Σ a_lo)),
/// where |hi'| <= 32 · 255 · 127 and |lo' - 128 · (...)| < 2^28, so every partial sum is exact in int32).
/// corr[b * 8 + t] = -128 · Σ a for inputs t < tn of the group at xq (rows digits * K bytes apart).
CK_Q8_IN void ck8_lane_corr(int digits, const int8_t *xq, long bpr, long K, long tn, int32_t *corr) {
    const __m256i ones = _mm256_set1_epi8(1);
    for (long b = 0; b < bpr; b++)
        for (long t = 0; t < tn; t++) {
            const int8_t *a = xq + (t * K + b * 32) * digits;
            __m256i v = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, _mm256_loadu_si256((const __m256i *)a));
            if (digits == 2)
                v = _mm256_add_epi32(_mm256_slli_epi32(v, 8),
                                     _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, _mm256_loadu_si256((const __m256i *)(a + 32))));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
            corr[b * 8 + t] = -128 * _mm_cvtsi128_si32(h);
        }
}

/// A Q4_1 row-lane tile: NT inputs (0..NT-1 of the group at xq, xd, xs; NT a compile-time constant, all stored)
/// by 16 weight rows from pa in the lanes of zmm vectors, of which rn are stored (the others computed on row
/// pa + (rn - 1)'s data and dropped). y points at output (0, r).
CK_Q8_IN void ck8_rowlane_q4_1(int digits, int NT, const uint8_t *pa, long bpr, long rowBytes, long rn, const int8_t *xq,
                               const float *xd, const float *xs, long K, float *y, long ldy, int accumulate) {
    const long bb = 20;
    const uint8_t *rows[16];
#pragma clang loop unroll(full)
    for (int i = 0; i < 16; i++) rows[i] = pa + (i < rn ? i : rn - 1) * rowBytes;
    __m512 acc[8];
#pragma clang loop unroll(full)
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    for (long b = 0; b < bpr; b++) {
        // The next tile's rows, this block's share of them (as ck8_tile).
        const char *next = (const char *)pa + 16 * rowBytes + b * 16 * bb;
#pragma clang loop unroll(full)
        for (int o = 0; o < 16 * bb; o += 64) _mm_prefetch(next + o, _MM_HINT_T0);
        // Bytes 4..19 of each row's block, byte i = element i (low nibble) and 16 + i (high nibble), rows k,
        // k + 4, k + 8, k + 12 in the 128-bit lanes of y4[k]: the transposed bytes' low nibbles are W[0..3]
        // (elements 0..15), their high nibbles W[4..7] (16..31).
        __m512i y4[4], r4[4], W[8];
#pragma clang loop unroll(full)
        for (int k = 0; k < 4; k++) {
            const long o = b * bb + 4;
            const __m256i lo = _mm256_loadu2_m128i((const __m128i *)(rows[k + 4] + o), (const __m128i *)(rows[k] + o));
            const __m256i hi = _mm256_loadu2_m128i((const __m128i *)(rows[k + 12] + o), (const __m128i *)(rows[k + 8] + o));
            y4[k] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
        ck8_transpose4z(y4, r4);
        const __m512i mask = _mm512_set1_epi8(0x0F);
#pragma clang loop unroll(full)
        for (int j = 0; j < 4; j++) {
            W[j] = _mm512_and_si512(r4[j], mask);
            W[j + 4] = _mm512_and_si512(_mm512_srli_epi16(r4[j], 4), mask);
        }
        // The rows' f16 d | m: the first dword of each row's block by scalar loads (as ck8_tile), d the low
        // halves, m the high ones.
#define CK8_DW(r) ck8_dword(rows[r] + b * bb)
        const __m512i g = _mm512_setr_epi32(CK8_DW(0), CK8_DW(1), CK8_DW(2), CK8_DW(3), CK8_DW(4), CK8_DW(5), CK8_DW(6), CK8_DW(7),
                                            CK8_DW(8), CK8_DW(9), CK8_DW(10), CK8_DW(11), CK8_DW(12), CK8_DW(13), CK8_DW(14), CK8_DW(15));
#undef CK8_DW
        const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
        const __m512 mw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
#pragma clang loop unroll(full)
        for (int t = 0; t < NT; t++) {
            const int8_t *a = xq + (t * K + b * 32) * digits;
            __m512i is = ck8_lane_dotz(W, a, CK8_SPLIT);
            // Two digits: (hi << 8) + lo exact in int32, float() as the twin's cast (see ck8_tile).
            if (digits == 2) is = _mm512_add_epi32(_mm512_slli_epi32(is, 8), ck8_lane_dotz(W, a + 32, CK8_SPLIT));
            __m512 p = _mm512_mul_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xd[b * 8 + t])), _mm512_cvtepi32_ps(is));
            p = _mm512_fmadd_ps(mw, _mm512_set1_ps(xs[b * 8 + t]), p);
            acc[t] = _mm512_add_ps(acc[t], p);
        }
    }
    const __mmask16 keep = (__mmask16)((1u << rn) - 1);
#pragma clang loop unroll(full)
    for (int t = 0; t < NT; t++) {
        float *yp = y + t * ldy;
        const __m512 v = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(keep, yp), acc[t]) : acc[t];
        _mm512_mask_storeu_ps(yp, keep, v);
    }
}

/// A Q8_0 row-lane tile: as ck8_rowlane_q4_1 with 8 weight rows in the lanes of ymm vectors (rn <= 8 stored) and
/// corr as ck8_lane_corr's.
CK_Q8_IN void ck8_rowlane_q8_0(int digits, int NT, const uint8_t *pa, long bpr, long rowBytes, long rn, const int8_t *xq,
                               const float *xd, const int32_t *corr, long K, float *y, long ldy, int accumulate) {
    const long bb = 34;
    const uint8_t *rows[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) rows[i] = pa + (i < rn ? i : rn - 1) * rowBytes;
    __m256 acc[8];
#pragma clang loop unroll(full)
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (long b = 0; b < bpr; b++) {
        const char *next = (const char *)pa + 8 * rowBytes + b * 8 * bb;
#pragma clang loop unroll(full)
        for (int o = 0; o < 8 * bb; o += 64) _mm_prefetch(next + o, _MM_HINT_T0);
        // Bytes 2..33 of each row's block = elements 0..31 in two halves of 16, rows k and k + 4 in the 128-bit
        // lanes of y4[k]; as w ^ 0x80 (see ck8_lane_corr).
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        __m256i W[8];
#pragma clang loop unroll(full)
        for (int h = 0; h < 2; h++) {
            __m256i y4[4], r4[4];
#pragma clang loop unroll(full)
            for (int k = 0; k < 4; k++)
                y4[k] = _mm256_loadu2_m128i((const __m128i *)(rows[k + 4] + b * bb + 2 + 16 * h),
                                            (const __m128i *)(rows[k] + b * bb + 2 + 16 * h));
            ck8_transpose4(y4, r4);
#pragma clang loop unroll(full)
            for (int j = 0; j < 4; j++) W[4 * h + j] = _mm256_xor_si256(r4[j], flip);
        }
        // The rows' f16 d: the first dword of each row's block by scalar loads, its low half.
#define CK8_DW(r) ck8_dword(rows[r] + b * bb)
        const __m256i g = _mm256_setr_epi32(CK8_DW(0), CK8_DW(1), CK8_DW(2), CK8_DW(3), CK8_DW(4), CK8_DW(5), CK8_DW(6), CK8_DW(7));
#undef CK8_DW
        const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(g));
#pragma clang loop unroll(full)
        for (int t = 0; t < NT; t++) {
            const int8_t *a = xq + (t * K + b * 32) * digits;
            const __m256i c = _mm256_set1_epi32(corr[b * 8 + t]);
            __m256i is = ck8_lane_dot(W, a, CK8_SPLIT, digits == 1 ? c : _mm256_setzero_si256());
            if (digits == 2) is = _mm256_add_epi32(_mm256_slli_epi32(is, 8), ck8_lane_dot(W, a + 32, CK8_SPLIT, c));
            const __m256 p = _mm256_mul_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xd[b * 8 + t])), _mm256_cvtepi32_ps(is));
            acc[t] = _mm256_add_ps(acc[t], p);
        }
    }
    const __mmask8 keep = (__mmask8)((1u << rn) - 1);
#pragma clang loop unroll(full)
    for (int t = 0; t < NT; t++) {
        float *yp = y + t * ldy;
        const __m256 v = accumulate ? _mm256_add_ps(_mm256_maskz_loadu_ps(keep, yp), acc[t]) : acc[t];
        _mm256_mask_storeu_ps(yp, keep, v);
    }
}
#endif

/// Input groups of 8 whose Q8_0 corrections (ck8_lane_corr) are computed at once: a pass over the weight rows
/// serves up to 32 inputs. The corrections live in a fixed stack buffer of CK8_CORR_CAP ints (32 KiB): fewer
/// groups a pass where K is wide; where even one group does not fit (K > 32,768) Q8_0 takes ck8_tile's 8-output
/// tiles, which need no corrections (K comes from a model file: the stack never grows with it).
#define CK8_CORR_GROUPS 4
#define CK8_CORR_CAP 8192

/// Weight pairs per wide tile (the AVX2 build): 2 (16 ymm registers; 1 pair measured 1.1x slower at T = 8).
/// Overridable with -D for measuring only.
#ifndef CK_Q8_WIDE_PAIRS
#define CK_Q8_WIDE_PAIRS 2
#endif

/// The driver. VNNI: row-lane tiles of exactly tn inputs (the group's inputs, 1..8) over runs of 16 (Q4_1) or
/// 8 (Q8_0) weight rows, except one input on Q8_0 (ck8_tile, TT = 1). Measured against the 8-output and wide
/// tiles they replaced (`REF=main ROUNDS=3 bash scripts/bench/q8rows.sh`, kernel alone, one thread, ratios
/// within a round): Q4_1 gate / down 1.8x at T = 8, 1.5x at T = 4, 1.8x at T = 3, 1.5-1.9x at T = 2, 1.02-1.08x at
/// T = 1; the Q8_0 two-digit head 49152x576 1.2-2.1x at T = 8, 1.2-1.6x at T = 2..4, 1.0-1.3x at T = 1 (memory-
/// bound there); Q8_0 1536x576 1.0-1.4x at T = 8 (a noisy run). The row-lane tile at one input on Q8_0 measured
/// 0.92-0.97x, so not there.
/// AVX2: weight rows in runs of 8 (kept in L1 while every group of 8 inputs passes over them); a group of 1 or
/// 2 inputs takes ck8_tile's tiles of TT = tn inputs by 8 / TT weight rows, a larger one wide tiles of one quad
/// (tn <= 4) or two by 2 · CK_Q8_WIDE_PAIRS weight rows (measured against the (TT = 4, RR = 2) and (8, 1) tiles
/// they replaced, kernel alone: 1.16x at T = 3 and 4, 1.3x at T = 8; at T = 2 a one-quad wide tile was slower,
/// 0.75x, half its work being padding).
CK_Q8_IN void ck8_rows(int fmt, int digits, const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq,
                       const float *xd, const float *xs, long T, float *y, long ldy, int accumulate) {
    const long K = bpr * 32, rowBytes = bpr * (fmt == CK_Q8_FMT_Q4_1 ? 20 : 34);
#if CK_Q8_VNNI
    // Row-lane tiles for every group size but one input on Q8_0 (see below): weight rows in runs of 16 (Q4_1) or
    // 8 (Q8_0), each passed over by every group of 8 inputs while in L1, the Q8_0 corrections per 32 inputs.
    const int q80 = fmt == CK_Q8_FMT_Q8_0;
    const long run = q80 ? 8 : 16;
    const long fit = CK8_CORR_CAP / (8 * bpr), groups = fit < 1 ? 1 : fit < CK8_CORR_GROUPS ? fit : CK8_CORR_GROUPS;
    int32_t corrStack[CK8_CORR_CAP];
    int32_t *corr = corrStack;
    if (q80 && 8 * bpr > CK8_CORR_CAP) {
        // Too wide for the corrections' buffer: 8-output tiles of two inputs (or one) by four (or eight) rows.
        for (long r = r0; r < r1; r += 8)
            for (long t0 = 0; t0 < T; t0 += 2) {
                const long tn = T - t0 < 2 ? T - t0 : 2, rn = r1 - r < 8 ? r1 - r : 8;
                // Input t0's quantized row, and its group's scales (t0 is even, so t0 and t0 + 1 share a group).
                const int8_t *q = xq + t0 * K * digits;
                const float *d = xd + (t0 / 8) * bpr * 8 + t0 % 8, *s = xs + (t0 / 8) * bpr * 8 + t0 % 8;
                for (long rr = r; rr < r + rn; rr += 8 / tn) {
                    const long rs = r + rn - rr < 8 / tn ? r + rn - rr : 8 / tn;
                    if (tn == 2) ck8_tile(fmt, digits, 2, blocks + rr * rowBytes, bpr, rowBytes, rs, q, d, s, K, y + t0 * ldy + rr, ldy, 2, accumulate);
                    else ck8_tile(fmt, digits, 1, blocks + rr * rowBytes, bpr, rowBytes, rs, q, d, s, K, y + t0 * ldy + rr, ldy, 1, accumulate);
                }
            }
        return;
    }
    for (long c0 = 0; c0 < T; c0 += 8 * groups) {
        const long cT = T - c0 < 8 * groups ? T - c0 : 8 * groups;
        if (q80)
            for (long t0 = 0; t0 < cT; t0 += 8)
                ck8_lane_corr(digits, xq + (c0 + t0) * K * digits, bpr, K, cT - t0 < 8 ? cT - t0 : 8, corr + t0 * bpr);
        for (long r = r0; r < r1; r += run) {
            const long rn = r1 - r < run ? r1 - r : run;
            for (long t0 = c0; t0 < c0 + cT; t0 += 8) {
                const long tn = T - t0 < 8 ? T - t0 : 8;
                const int8_t *q = xq + t0 * K * digits;
                const float *d = xd + t0 * bpr, *s = xs + t0 * bpr;
                float *yt = y + t0 * ldy + r;
#define CK8_LANES(NT)                                                                                           \
    (q80 ? ck8_rowlane_q8_0(digits, (NT), blocks + r * rowBytes, bpr, rowBytes, rn, q, d, corr + (t0 - c0) * bpr, K, yt, ldy, accumulate) \
         : ck8_rowlane_q4_1(digits, (NT), blocks + r * rowBytes, bpr, rowBytes, rn, q, d, s, K, yt, ldy, accumulate))
                switch (tn) {
                // One input on Q8_0: ck8_tile's 8-output tile (the row-lane tile measured 0.92-0.97x there).
                case 1:
                    if (q80) ck8_tile(fmt, digits, 1, blocks + r * rowBytes, bpr, rowBytes, rn, q, d, s, K, yt, ldy, 1, accumulate);
                    else CK8_LANES(1);
                    break;
                case 2: CK8_LANES(2); break;
                case 3: CK8_LANES(3); break;
                case 4: CK8_LANES(4); break;
                case 5: CK8_LANES(5); break;
                case 6: CK8_LANES(6); break;
                case 7: CK8_LANES(7); break;
                default: CK8_LANES(8); break;
                }
#undef CK8_LANES
            }
        }
    }
#else
    for (long r = r0; r < r1; r += 8) {
        const long rend = r + 8 < r1 ? r + 8 : r1;
        for (long t0 = 0; t0 < T; t0 += 8) {
            const long tn = T - t0 < 8 ? T - t0 : 8;
            // Group t0 / 8: its rows at xq + t0 * K * digits, its scales and sums at (t0 / 8) * bpr * 8 = t0 * bpr.
            const int8_t *q = xq + t0 * K * digits;
            const float *d = xd + t0 * bpr, *s = xs + t0 * bpr;
            float *yt = y + t0 * ldy;
#define CK8_TILES(TT)                                                                                   \
    for (long rr = r; rr < rend; rr += 8 / (TT))                                                        \
        ck8_tile(fmt, digits, (TT), blocks + rr * rowBytes, bpr, rowBytes, rend - rr < 8 / (TT) ? rend - rr : 8 / (TT), \
                 q, d, s, K, yt + rr, ldy, tn, accumulate)
#define CK8_WIDE(H)                                                                                     \
    for (long rr = r; rr < rend; rr += 2 * CK_Q8_WIDE_PAIRS)                                            \
        ck8_wide(fmt, digits, (H), CK_Q8_WIDE_PAIRS, blocks + rr * rowBytes, bpr, rowBytes,              \
                 rend - rr < 2 * CK_Q8_WIDE_PAIRS ? rend - rr : 2 * CK_Q8_WIDE_PAIRS, q, d, s, K, yt + rr, ldy, tn, accumulate)
            if (tn == 1) CK8_TILES(1);
            else if (tn == 2) CK8_TILES(2);
            else if (tn <= 4) CK8_WIDE(1);
            else CK8_WIDE(2);
#undef CK8_TILES
#undef CK8_WIDE
        }
    }
#endif
}

#endif
