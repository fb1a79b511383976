#include "CKernels.h"

/// A pool task (`ck_task_fn`) for `struct ck_rows_job`: chunk c is weight rows c * per ..< min(N, (c + 1) * per).
void ck_rows_task(void *ctx, long c) {
    const struct ck_rows_job *j = ctx;
    const long lo = c * j->per, hi = lo + j->per < j->n ? lo + j->per : j->n;
    if (lo < hi) j->kernel(j->blocks, j->blocksPerRow, lo, hi, j->x, j->T, j->y, j->ldy, j->accumulate);
}

#if defined(__x86_64__)
#include <immintrin.h>

int ck_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

#define CK_TARGET __attribute__((target("avx2,fma,f16c")))
#define CK_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

/// The f16 at p in all 8 lanes (exact conversion). Broadcast, then convert: `_mm256_set1_ps(_cvtsh_ss(h))`
/// compiled to an insert into whatever register was free, a false dependency on that register's last
/// writer (often an accumulator of the previous block), which serialized consecutive blocks.
CK_INLINE __m256 ck_half8(const uint8_t *p) {
    uint16_t h;
    __builtin_memcpy(&h, p, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}

/// The 32 weights of a Q4_1 block as 4 x 8 floats, element order: w = fma(q, d, m).
CK_INLINE void ck_q4_1_block(const uint8_t *p, __m256 w[4]) {
    const __m256 vd = ck_half8(p), vm = ck_half8(p + 2);
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
    const __m256 vd = ck_half8(p);
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

/// Formats of the row kernels (`fmt` below): block bytes and decoder.
enum { CK_Q4_1 = 0, CK_Q8_0 = 1 };
#define CK_BLOCK_BYTES(fmt) ((fmt) == CK_Q4_1 ? 20 : 34)

CK_INLINE void ck_decode(int fmt, const uint8_t *p, __m256 w[4]) {
    if (fmt == CK_Q4_1) ck_q4_1_block(p, w); else ck_q8_0_block(p, w);
}

/// A register tile: ROWS consecutive weight rows (r, r + 1, ...) against TT inputs (xt, xt + K, ...),
/// ROWS x TT accumulators held in registers (ROWS and TT are constants at every call site, so the
/// loops unroll and `acc` lives in registers). Each block of each row is decoded once for all TT
/// inputs, and each x load serves all ROWS rows. Per (t, r): acc += block dot, block by block, then
/// the fixed horizontal sum: the same operations in the same order whatever ROWS, TT or the tiling.
CK_INLINE void ck_tile(int fmt, int ROWS, int TT, const uint8_t *pa, long bpr, const float *xt, long K,
                       float *y, long ldy, long r, int accumulate) {
    const long bb = CK_BLOCK_BYTES(fmt);
    __m256 acc[2][8];
#pragma clang loop unroll(full)
    for (int i = 0; i < ROWS; i++)
#pragma clang loop unroll(full)
        for (int t = 0; t < TT; t++) acc[i][t] = _mm256_setzero_ps();
    for (long b = 0; b < bpr; b++) {
        __m256 w[2][4];
#pragma clang loop unroll(full)
        for (int i = 0; i < ROWS; i++) ck_decode(fmt, pa + i * bpr * bb + b * bb, w[i]);
#pragma clang loop unroll(full)
        for (int t = 0; t < TT; t++)
#pragma clang loop unroll(full)
            for (int i = 0; i < ROWS; i++)
                acc[i][t] = _mm256_add_ps(acc[i][t], ck_block_dot(w[i], xt + t * K + b * 32));
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < TT; t++)
#pragma clang loop unroll(full)
        for (int i = 0; i < ROWS; i++) ck_store(y + t * ldy + r + i, ck_hsum(acc[i][t]), accumulate);
}

/// ck_tile with a run-time input count 1 <= tn <= 8, dispatched to a constant-count body.
CK_INLINE void ck_tile_n(int fmt, int ROWS, long tn, const uint8_t *pa, long bpr, const float *xt, long K,
                         float *y, long ldy, long r, int accumulate) {
    switch (tn) {
    case 1: ck_tile(fmt, ROWS, 1, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    case 2: ck_tile(fmt, ROWS, 2, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    case 3: ck_tile(fmt, ROWS, 3, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    case 4: ck_tile(fmt, ROWS, 4, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    case 5: ck_tile(fmt, ROWS, 5, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    case 6: ck_tile(fmt, ROWS, 6, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    case 7: ck_tile(fmt, ROWS, 7, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    default: ck_tile(fmt, ROWS, 8, pa, bpr, xt, K, y, ldy, r, accumulate); break;
    }
}

/// The shared driver: weight rows two at a time (the odd last one alone); for each pair, the inputs
/// in tiles of up to 8 (the pair's blocks stay in L1 across the tiles). `pairMax`: the largest tile
/// both rows of a pair take together (their 2 x tn accumulators and 8 decoded weight vectors must fit
/// the register file: 16 vector registers with AVX2, 32 with AVX-512VL); larger tiles go row by row.
/// Which of these runs changes no bits (see `ck_tile`).
CK_INLINE void ck_rows(int fmt, int pairMax, const uint8_t *blocks, long bpr, long r0, long r1,
                       const float *x, long T, float *y, long ldy, int accumulate) {
    const long K = bpr * 32, rowBytes = bpr * CK_BLOCK_BYTES(fmt);
    long r = r0;
    if (T == 1) {   // one input (plain decoding): the pair loop alone, no tiling
        for (; r + 1 < r1; r += 2) ck_tile(fmt, 2, 1, blocks + r * rowBytes, bpr, x, K, y, ldy, r, accumulate);
        if (r < r1) ck_tile(fmt, 1, 1, blocks + r * rowBytes, bpr, x, K, y, ldy, r, accumulate);
        return;
    }
    for (; r + 1 < r1; r += 2) {
        const uint8_t *pa = blocks + r * rowBytes;
        for (long t0 = 0; t0 < T; t0 += 8) {
            const long tn = T - t0 < 8 ? T - t0 : 8;
            float *yt = y + t0 * ldy;
            if (tn <= pairMax) {
                ck_tile_n(fmt, 2, tn, pa, bpr, x + t0 * K, K, yt, ldy, r, accumulate);
            } else {
                ck_tile_n(fmt, 1, tn, pa, bpr, x + t0 * K, K, yt, ldy, r, accumulate);
                ck_tile_n(fmt, 1, tn, pa + rowBytes, bpr, x + t0 * K, K, yt, ldy, r + 1, accumulate);
            }
        }
    }
    for (; r < r1; r++)
        for (long t0 = 0; t0 < T; t0 += 8)
            ck_tile_n(fmt, 1, T - t0 < 8 ? T - t0 : 8, blocks + r * rowBytes, bpr, x + t0 * K, K, y + t0 * ldy, ldy, r, accumulate);
}

CK_TARGET void ck_q4_1_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                            const float *x, long T, float *y, long ldy, int accumulate) {
    ck_rows(CK_Q4_1, 3, blocks, blocksPerRow, r0, r1, x, T, y, ldy, accumulate);
}

CK_TARGET void ck_q8_0_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                            const float *x, long T, float *y, long ldy, int accumulate) {
    ck_rows(CK_Q8_0, 3, blocks, blocksPerRow, r0, r1, x, T, y, ldy, accumulate);
}

int ck_cpu_has_avx512vl(void) {
    __builtin_cpu_init();
    return ck_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}

// The same kernels compiled with AVX-512VL enabled: the same 256-bit instructions (no 512-bit
// vectors, no new operations), but 32 vector registers, so a pair of rows takes all 8 inputs at once.
#define CK_TARGET_512 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl")))

CK_TARGET_512 void ck_q4_1_rows_avx512vl(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                                         const float *x, long T, float *y, long ldy, int accumulate) {
    ck_rows(CK_Q4_1, 8, blocks, blocksPerRow, r0, r1, x, T, y, ldy, accumulate);
}

CK_TARGET_512 void ck_q8_0_rows_avx512vl(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                                         const float *x, long T, float *y, long ldy, int accumulate) {
    ck_rows(CK_Q8_0, 8, blocks, blocksPerRow, r0, r1, x, T, y, ldy, accumulate);
}

#else

int ck_cpu_has_avx2_fma(void) { return 0; }
void ck_q4_1_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                  const float *x, long T, float *y, long ldy, int accumulate) {}
void ck_q8_0_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                  const float *x, long T, float *y, long ldy, int accumulate) {}
int ck_cpu_has_avx512vl(void) { return 0; }
void ck_q4_1_rows_avx512vl(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                           const float *x, long T, float *y, long ldy, int accumulate) {}
void ck_q8_0_rows_avx512vl(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                           const float *x, long T, float *y, long ldy, int accumulate) {}

#endif
