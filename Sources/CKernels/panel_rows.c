// Prompt rows through a dequantized weight tile (`QuantizedTiles.forwardChunksConcurrently`): the tile's rows
// are packed once, 32 at a time, into a k-major panel, and every prompt row of every chunk in the step runs
// over that panel in one register-blocked loop, see CKernels.h.
//
// Per output (row m, weight row n) the arithmetic is one chain: acc = +0, then acc = fma(x[m][k], w[n][k], acc)
// for k = 0..K-1 in order, then y = acc or y = y + acc. The builds differ only in how many outputs run side by
// side (rows per block, weight rows per vector), never in an output's operations, so an output's bits depend
// on its own input row and weight row alone: not on the other rows in the call, the block that computed it,
// the panel or the tile. The AVX-512F build, the AVX2 + FMA build and the portable twin (`fmaf`, the same
// single rounding) give the same bits (PanelRowsTests). Built with -ffp-contract=off: the only fused
// operations are the spelled-out ones.
//
// Measured (07:30-07:40 UTC, 2 cores shared with another build; ratios within one run):
// - kernels alone, one thread, pack included, against one sgemm per chunk on the same tile
//   (scripts/bench/panelrows.sh): 160 rows as 8 chunks of 20 1.58-1.60x; one chunk of 20 1.05-1.34x;
//   one chunk of 250 1.09-1.11x (~110 GFLOP/s, near the FMA peak, so no prefetching: none was needed);
// - `lora bench prefill --model SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 --repetitions 3` against main's
//   binary, alternating, 3 rounds: 250-token prompt 1.08-1.10x; `--prompt-tokens 160 --prefill-chunk 20`
//   1.08-1.14x (dequantizing and packing are ~30% of that run: per 20 rows each tile is packed anew);
// - scripts/bench/serve.sh with LORA_BIN=<main's binary> and this tree's, run main, this, this, main (07:49-07:53
//   UTC): 8 streams on one adapter TTFT p50 333 and 397 ms vs main's 538 and 473 ms; in-round 8/1 streams 3.17x and
//   2.73x vs 2.56x and 2.33x (noisy: 1 stream alone moved 95-125 tokens/s between runs).
// 8 x 32 (AVX-512) and 12 x 32 register blocks measured the same; packing from a Q4_1 dequantizer writing
// panels directly measured the same as dequantizing 32 rows then packing them (both instruction-bound).
#include "CKernels.h"
#include <math.h>

#define CK_PANEL CK_PANEL_WIDTH

/// Packing is data movement only (no rounding), so the scalar loop and the AVX2 transposes write the same
/// panel: panel[k * 32 + i] = tile[i * K + k] for i < width, +0 for width <= i < 32.
static void ck_panel_pack_base(const float *tile, long width, long K, float *panel) {
    for (long i = 0; i < width; i++)
        for (long k = 0; k < K; k++) panel[k * CK_PANEL + i] = tile[i * K + k];
    for (long i = width; i < CK_PANEL; i++)
        for (long k = 0; k < K; k++) panel[k * CK_PANEL + i] = 0;
}

/// The portable body: every output's chain computed alone, fmaf per k (one rounding, as the vector FMAs).
static void ck_panel_rows_base(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                               long count, float *y, long ldy, int accumulate) {
    for (long j = 0; j < count; j++) {
        const float *xm = x + rows[j] * ldx;
        float *ym = y + rows[j] * ldy;
        for (long i = 0; i < width; i++) {
            float acc = 0;
            for (long k = 0; k < K; k++) acc = fmaf(xm[k], panel[k * CK_PANEL + i], acc);
            ym[i] = accumulate ? ym[i] + acc : acc;
        }
    }
}

void ck_panel_rows_portable(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                            long count, float *y, long ldy, int accumulate) {
    ck_panel_rows_base(panel, width, K, x, ldx, rows, count, y, ldy, accumulate);
}

#if defined(__x86_64__)
#include <immintrin.h>
#include "transpose8.h"

/// Full panels by 8 x 8 transposes, the K % 8 tail and a partial panel by the scalar loop.
__attribute__((target("avx2")))
static void ck_panel_pack_avx2(const float *tile, long width, long K, float *panel) {
    if (width < CK_PANEL) { ck_panel_pack_base(tile, width, K, panel); return; }
    const long K8 = K - K % 8;
    // k outer: 8 k fill 8 whole panel lines while the 32 rows' current lines stay in L1 (row groups outer wrote a
    // quarter of each line of a panel larger than L1 per pass: 1.3x slower, K = 576, one thread).
    for (long k = 0; k < K8; k += 8)
        for (long i = 0; i < CK_PANEL; i += 8) ck_transpose8(tile + i * K + k, K, panel + k * CK_PANEL + i, CK_PANEL);
    for (long i = 0; i < CK_PANEL; i++)
        for (long k = K8; k < K; k++) panel[k * CK_PANEL + i] = tile[i * K + k];
}

void ck_panel_pack(const float *tile, long width, long K, float *panel) {
    static int avx2 = -1;   // a benign race: every thread computes the same answer
    if (avx2 < 0) avx2 = ck_cpu_has_avx2_fma();
    if (avx2) { ck_panel_pack_avx2(tile, width, K, panel); return; }
    ck_panel_pack_base(tile, width, K, panel);
}

// ---- AVX-512F: 32 weight rows in two zmm, MR rows a block (2 * MR accumulators) ----

#define CK_PR512 static inline __attribute__((always_inline, target("avx2,fma,avx512f")))

/// Rows rows[0..MR) x the panel's 32 weight rows: per k, the panel's two vectors loaded once and every row's
/// x[m][k] broadcast into one FMA per vector; lanes at or past width are never stored (mask lo, hi).
CK_PR512 void ck_panel_block512(const float *panel, long K, const float *x, long ldx, const long *rows, int MR,
                                float *y, long ldy, __mmask16 lo, __mmask16 hi, int accumulate) {
    const float *xr[8];
    __m512 a[8][2];
    for (int j = 0; j < MR; j++) {
        xr[j] = x + rows[j] * ldx;
        a[j][0] = _mm512_setzero_ps();
        a[j][1] = _mm512_setzero_ps();
    }
    for (long k = 0; k < K; k++) {
        const __m512 w0 = _mm512_loadu_ps(panel + k * CK_PANEL), w1 = _mm512_loadu_ps(panel + k * CK_PANEL + 16);
        for (int j = 0; j < MR; j++) {
            const __m512 xv = _mm512_set1_ps(xr[j][k]);
            a[j][0] = _mm512_fmadd_ps(xv, w0, a[j][0]);
            a[j][1] = _mm512_fmadd_ps(xv, w1, a[j][1]);
        }
    }
    for (int j = 0; j < MR; j++) {
        float *ym = y + rows[j] * ldy;
        if (accumulate) {
            a[j][0] = _mm512_add_ps(_mm512_maskz_loadu_ps(lo, ym), a[j][0]);
            a[j][1] = _mm512_add_ps(_mm512_maskz_loadu_ps(hi, ym + 16), a[j][1]);
        }
        _mm512_mask_storeu_ps(ym, lo, a[j][0]);
        _mm512_mask_storeu_ps(ym + 16, hi, a[j][1]);
    }
}

__attribute__((target("avx2,fma,avx512f")))
void ck_panel_rows_avx512(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                          long count, float *y, long ldy, int accumulate) {
    const __mmask16 lo = (__mmask16)(width >= 16 ? 0xFFFF : (1u << width) - 1);
    const __mmask16 hi = (__mmask16)(width >= 32 ? 0xFFFF : width > 16 ? (1u << (width - 16)) - 1 : 0);
    long j = 0;
    for (; j + 8 <= count; j += 8) ck_panel_block512(panel, K, x, ldx, rows + j, 8, y, ldy, lo, hi, accumulate);
    for (; j + 4 <= count; j += 4) ck_panel_block512(panel, K, x, ldx, rows + j, 4, y, ldy, lo, hi, accumulate);
    for (; j < count; j++) ck_panel_block512(panel, K, x, ldx, rows + j, 1, y, ldy, lo, hi, accumulate);
}

// ---- AVX2 + FMA: the panel in two halves of 16 weight rows (two ymm), MR rows a block ----

#define CK_PR256 static inline __attribute__((always_inline, target("avx2,fma")))

/// Rows rows[0..MR) x the panel's weight rows h0..h0+16: per k two ymm loads, one broadcast and two FMAs per
/// row; outputs at or past width go through a stack line and are not stored.
CK_PR256 void ck_panel_block256(const float *panel, long K, long h0, long width, const float *x, long ldx,
                                const long *rows, int MR, float *y, long ldy, int accumulate) {
    const float *xr[6];
    __m256 a[6][2];
    for (int j = 0; j < MR; j++) {
        xr[j] = x + rows[j] * ldx;
        a[j][0] = _mm256_setzero_ps();
        a[j][1] = _mm256_setzero_ps();
    }
    const float *p = panel + h0;
    for (long k = 0; k < K; k++) {
        const __m256 w0 = _mm256_loadu_ps(p + k * CK_PANEL), w1 = _mm256_loadu_ps(p + k * CK_PANEL + 8);
        for (int j = 0; j < MR; j++) {
            const __m256 xv = _mm256_broadcast_ss(xr[j] + k);
            a[j][0] = _mm256_fmadd_ps(xv, w0, a[j][0]);
            a[j][1] = _mm256_fmadd_ps(xv, w1, a[j][1]);
        }
    }
    const long n = width - h0 < 16 ? width - h0 : 16;
    for (int j = 0; j < MR; j++) {
        float *ym = y + rows[j] * ldy + h0;
        if (n == 16) {
            if (accumulate) {
                a[j][0] = _mm256_add_ps(_mm256_loadu_ps(ym), a[j][0]);
                a[j][1] = _mm256_add_ps(_mm256_loadu_ps(ym + 8), a[j][1]);
            }
            _mm256_storeu_ps(ym, a[j][0]);
            _mm256_storeu_ps(ym + 8, a[j][1]);
        } else {
            float line[16];
            _mm256_storeu_ps(line, a[j][0]);
            _mm256_storeu_ps(line + 8, a[j][1]);
            for (long i = 0; i < n; i++) ym[i] = accumulate ? ym[i] + line[i] : line[i];
        }
    }
}

__attribute__((target("avx2,fma")))
void ck_panel_rows_avx2(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                        long count, float *y, long ldy, int accumulate) {
    for (long h0 = 0; h0 < width; h0 += 16) {
        long j = 0;
        for (; j + 6 <= count; j += 6) ck_panel_block256(panel, K, h0, width, x, ldx, rows + j, 6, y, ldy, accumulate);
        for (; j + 3 <= count; j += 3) ck_panel_block256(panel, K, h0, width, x, ldx, rows + j, 3, y, ldy, accumulate);
        for (; j < count; j++) ck_panel_block256(panel, K, h0, width, x, ldx, rows + j, 1, y, ldy, accumulate);
    }
}

#else

// Not x86-64: `ck_cpu_has_avx2_fma` reports 0, the callers take the portable body; these are never called.
void ck_panel_pack(const float *tile, long width, long K, float *panel) { ck_panel_pack_base(tile, width, K, panel); }
void ck_panel_rows_avx512(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                          long count, float *y, long ldy, int accumulate) {
    ck_panel_rows_base(panel, width, K, x, ldx, rows, count, y, ldy, accumulate);
}
void ck_panel_rows_avx2(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                        long count, float *y, long ldy, int accumulate) {
    ck_panel_rows_base(panel, width, K, x, ldx, rows, count, y, ldy, accumulate);
}

#endif
