// Dequantize-into-tile kernels for prefill and training (`QuantizedTiles`): blocks of a quantized
// weight expanded to fp32 rows that sgemm then multiplies. AVX2 + F16C, chosen at run time by the
// Swift callers (`QuantizedKernelDispatch.useAVX2`); each has a portable Swift twin giving the same
// bits (`Q4_1Weight.dequantizePortable`, `Q8_0Weight.dequantizePortable`, `NF4Weight.dequantizeRowsPortable`).
// Built with -ffp-contract=off: a multiply followed by an add stays two roundings, as in the twins.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define CK_TILE_TARGET __attribute__((target("avx2,fma,f16c")))
#define CK_TILE_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

CK_TILE_INLINE float ck_tile_half(const uint8_t *p) {
    return _cvtsh_ss((uint16_t)(p[0] | (p[1] << 8)));
}

/// Eight bytes (low 64 bits of v) as eight floats.
CK_TILE_INLINE __m256 ck_tile_u8x8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }
CK_TILE_INLINE __m256 ck_tile_i8x8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

CK_TILE_TARGET void ck_dequant_q4_1(const uint8_t *src, long blockCount, float *dst) {
    const __m128i mask = _mm_set1_epi8(0x0F);
    for (long b = 0; b < blockCount; b++) {
        const uint8_t *p = src + b * 20;
        float *out = dst + b * 32;
        const __m256 vd = _mm256_set1_ps(ck_tile_half(p)), vm = _mm256_set1_ps(ck_tile_half(p + 2));
        const __m128i qs = _mm_loadu_si128((const __m128i *)(p + 4));
        const __m128i lo = _mm_and_si128(qs, mask);                      // elements 0..15
        const __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);   // elements 16..31
        // q * d + m: a multiply, then an add (two roundings, like ggml's scalar dequantize_row_q4_1).
        _mm256_storeu_ps(out, _mm256_add_ps(_mm256_mul_ps(ck_tile_u8x8(lo), vd), vm));
        _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_mul_ps(ck_tile_u8x8(_mm_srli_si128(lo, 8)), vd), vm));
        _mm256_storeu_ps(out + 16, _mm256_add_ps(_mm256_mul_ps(ck_tile_u8x8(hi), vd), vm));
        _mm256_storeu_ps(out + 24, _mm256_add_ps(_mm256_mul_ps(ck_tile_u8x8(_mm_srli_si128(hi, 8)), vd), vm));
    }
}

CK_TILE_TARGET void ck_dequant_q8_0(const uint8_t *src, long blockCount, float *dst) {
    for (long b = 0; b < blockCount; b++) {
        const uint8_t *p = src + b * 34;
        float *out = dst + b * 32;
        const __m256 vd = _mm256_set1_ps(ck_tile_half(p));
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(p + 2));
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(p + 18));
        _mm256_storeu_ps(out, _mm256_mul_ps(ck_tile_i8x8(q0), vd));
        _mm256_storeu_ps(out + 8, _mm256_mul_ps(ck_tile_i8x8(_mm_srli_si128(q0, 8)), vd));
        _mm256_storeu_ps(out + 16, _mm256_mul_ps(ck_tile_i8x8(q1), vd));
        _mm256_storeu_ps(out + 24, _mm256_mul_ps(ck_tile_i8x8(_mm_srli_si128(q1, 8)), vd));
    }
}

/// code[idx] for eight indices 0..15: two in-register tables of eight, picked by idx's bit 3.
CK_TILE_INLINE __m256 ck_tile_lookup16(__m256i idx, __m256 lowTable, __m256 highTable) {
    const __m256 a = _mm256_permutevar8x32_ps(lowTable, idx);    // uses idx & 7
    const __m256 b = _mm256_permutevar8x32_ps(highTable, idx);
    const __m256i high = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7));
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(high));
}

/// Sixteen nibble indices (bytes of e) looked up, scaled and stored at out[0..16).
CK_TILE_INLINE void ck_tile_nf4_16(__m128i e, __m256 lowTable, __m256 highTable, __m256 scale, float *out) {
    _mm256_storeu_ps(out, _mm256_mul_ps(ck_tile_lookup16(_mm256_cvtepu8_epi32(e), lowTable, highTable), scale));
    _mm256_storeu_ps(out + 8, _mm256_mul_ps(ck_tile_lookup16(_mm256_cvtepu8_epi32(_mm_srli_si128(e, 8)), lowTable, highTable), scale));
}

CK_TILE_TARGET void ck_dequant_nf4(const uint8_t *packed, const float *absmax, long blockCount,
                                   const float *code, float *dst) {
    const __m256 lowTable = _mm256_loadu_ps(code), highTable = _mm256_loadu_ps(code + 8);
    const __m128i mask = _mm_set1_epi8(0x0F);
    for (long b = 0; b < blockCount; b++) {
        const uint8_t *p = packed + b * 32;
        float *out = dst + b * 64;
        const __m256 scale = _mm256_set1_ps(absmax[b]);
        for (int half = 0; half < 2; half++) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(p + 16 * half));
            const __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);   // first element of each byte
            const __m128i lo = _mm_and_si128(q, mask);                      // second
            // Interleaved back into element order: hi0, lo0, hi1, lo1, ...
            ck_tile_nf4_16(_mm_unpacklo_epi8(hi, lo), lowTable, highTable, scale, out + 32 * half);
            ck_tile_nf4_16(_mm_unpackhi_epi8(hi, lo), lowTable, highTable, scale, out + 32 * half + 16);
        }
    }
}

#else

// Not x86-64: `ck_cpu_has_avx2_fma` reports 0 and the Swift twins run; these are never called.
void ck_dequant_q4_1(const uint8_t *src, long blockCount, float *dst) { (void)src; (void)blockCount; (void)dst; }
void ck_dequant_q8_0(const uint8_t *src, long blockCount, float *dst) { (void)src; (void)blockCount; (void)dst; }
void ck_dequant_nf4(const uint8_t *packed, const float *absmax, long blockCount, const float *code, float *dst) {
    (void)packed; (void)absmax; (void)blockCount; (void)code; (void)dst;
}

#endif
