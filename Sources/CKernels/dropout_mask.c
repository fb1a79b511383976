// Dropout keep-masks from a counter-based hash, so a mask's 64-bit words can be drawn 8 elements per
// vector and any element's bit depends on (key, element index) alone (a resumed run redraws the same
// mask, a word can be drawn out of order). Element i is kept iff mix(mix(i ^ k1) ^ k2) >= threshold,
// with mix the 32-bit integer hash "lowbias32" (shifts 16/15/16, multipliers 0x7feb352d and 0x846ca68b,
// from Chris Wellons' hash-prospector results), so the keep probability is 1 - threshold / 2^32.
// The AVX2 body and the portable twin perform the same integer operations: the same bits.
#include "CKernels.h"
#include <stdint.h>

static inline uint32_t ck_mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/// Word w of the mask, its first n (<= 64) elements, one element at a time.
static inline uint64_t ck_dropout_word_ref(long w, long n, uint32_t k1, uint32_t k2, uint32_t threshold) {
    uint64_t word = 0;
    for (long j = 0; j < n; j++) {
        const uint32_t h = ck_mix32(ck_mix32((uint32_t)(w * 64 + j) ^ k1) ^ k2);
        if (h >= threshold) word |= (uint64_t)1 << j;
    }
    return word;
}

void ck_dropout_mask_ref(uint64_t *bits, long count, uint32_t k1, uint32_t k2, uint32_t threshold) {
    const long words = (count + 63) / 64;
    for (long w = 0; w < words; w++)
        bits[w] = ck_dropout_word_ref(w, count - w * 64 < 64 ? count - w * 64 : 64, k1, k2, threshold);
}

#if defined(__x86_64__)
#include <immintrin.h>

#define CK_D_INLINE static inline __attribute__((always_inline, target("avx2")))

CK_D_INLINE __m256i ck_mix32x8(__m256i x) {
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x7feb352du));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

__attribute__((target("avx2")))
void ck_dropout_mask(uint64_t *bits, long count, uint32_t k1, uint32_t k2, uint32_t threshold) {
    const long full = count / 64;
    const __m256i vk1 = _mm256_set1_epi32((int)k1), vk2 = _mm256_set1_epi32((int)k2);
    // h >= threshold (unsigned) as a signed compare of both sides with the sign bit flipped: keep iff
    // not (threshold' > h').
    const __m256i flip = _mm256_set1_epi32((int)0x80000000u);
    const __m256i vthr = _mm256_xor_si256(_mm256_set1_epi32((int)threshold), flip);
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (long w = 0; w < full; w++) {
        uint64_t word = 0;
        for (int g = 0; g < 8; g++) {
            const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)(w * 64 + g * 8)), lanes);
            const __m256i h = ck_mix32x8(_mm256_xor_si256(ck_mix32x8(_mm256_xor_si256(idx, vk1)), vk2));
            const __m256i drop = _mm256_cmpgt_epi32(vthr, _mm256_xor_si256(h, flip));
            const uint32_t keep = (uint32_t)(~_mm256_movemask_ps(_mm256_castsi256_ps(drop))) & 0xFFu;
            word |= (uint64_t)keep << (g * 8);
        }
        bits[w] = word;
    }
    // The last, partial word: the portable twin's.
    if (full * 64 < count) bits[full] = ck_dropout_word_ref(full, count - full * 64, k1, k2, threshold);
}

#else

void ck_dropout_mask(uint64_t *bits, long count, uint32_t k1, uint32_t k2, uint32_t threshold) {
    ck_dropout_mask_ref(bits, count, k1, k2, threshold);
}

#endif
