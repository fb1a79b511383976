// AVX2 + FMA + F16C kernels for the quantized GEMVs, selected at run time (`ck_cpu_has_avx2_fma`);
// the portable Swift kernels are the fallback. Compiled for baseline x86-64: only the functions
// below carry a target attribute, so this target runs (and reports "no") on any CPU.
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stdint.h>

/// 1 when the CPU has AVX2, FMA and F16C (and the build is x86-64), else 0.
int ck_cpu_has_avx2_fma(void);

/// Y[t, r] (= or +=) Σ_k W[r, k] · X[t, k] for weight rows r0 ≤ r < r1 and t < T, W in Q4_1 blocks
/// (20 bytes per 32 weights: f16 d, f16 m, 16 bytes of nibble pairs), K = 32 * blocksPerRow.
/// X is [T, K] row-major, Y is [T, N] row-major (ldy = N). Per (t, r) the arithmetic is fixed:
/// w = fma(q, d, m) per element; per block s = (w0·x0 + w1·x1) + (w2·x2 + w3·x3) (SIMD8 lanes,
/// mul then fma); acc += s block by block; y = horizontal sum of acc in a fixed tree. It does not
/// depend on T, r0, r1 or the other rows, so each row is bit-identical alone or in any batch.
/// Weight rows go two at a time, each block decoded once for up to 8 inputs whose accumulators stay in
/// registers (register tiles of a constant size); T > 8 runs tiles of 8 over the same L1-resident rows.
void ck_q4_1_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                  const float *x, long T, float *y, long ldy, int accumulate);

/// As `ck_q4_1_rows` for Q8_0 blocks (34 bytes per 32 weights: f16 d, 32 int8 q), w = q * d.
void ck_q8_0_rows(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                  const float *x, long T, float *y, long ldy, int accumulate);

/// 1 when the CPU also has AVX-512F and AVX-512VL (32 vector registers for the 256-bit kernels), else 0.
int ck_cpu_has_avx512vl(void);

/// `ck_q4_1_rows` / `ck_q8_0_rows` compiled for AVX-512VL: the same 256-bit operations in the same
/// order per (t, r), so the same bits, with 32 registers for larger register tiles. Only call them
/// when `ck_cpu_has_avx512vl()`.
void ck_q4_1_rows_avx512vl(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                           const float *x, long T, float *y, long ldy, int accumulate);
void ck_q8_0_rows_avx512vl(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                           const float *x, long T, float *y, long ldy, int accumulate);

/// Y[t, r] (= or +=) alpha * Σ_k W[r, k] · X[t, k] for rows r0 ≤ r < r1 of a dense fp32 W [N, K]
/// (row-major) and t < T; X [T, ldx], Y [T, ldy]. Per (t, r) the order is fixed (16 lanes, each
/// adding its products k ≡ lane mod 16 in order; the K % 16 tail into lanes 0..; lanes l and l + 8
/// added, then a fixed tree; times alpha; then stored or added): it depends on neither T nor the row
/// range, so a row's result is the same bits alone or in any batch. AVX2 where the CPU has it, the
/// same bits either way. For LoRA's low-rank terms on decode rows (A: N = R; B: K = R).
void ck_dense_rows(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                   float *y, long ldy, float alpha, int accumulate);

/// `ck_dense_rows` without AVX2 (the portable build), for tests.
void ck_dense_rows_portable(const float *w, long K, long r0, long r1, const float *x, long ldx, long T,
                            float *y, long ldy, float alpha, int accumulate);

/// LoRA's B product on decode rows: Y[t, n] += alpha * Σ_{r<R} H[t, r] · B[n, r] for n < N, t < T;
/// B [N, R] row-major, H [T, ldh], Y [T, ldy]. Per (t, n) one running sum over r in order (started
/// from the first product, multiply then add, never fused), then Y + alpha * sum: fixed by R alone,
/// so a row's result is the same bits alone or in any batch. The AVX2 body keeps 8 outputs side by
/// side (B transposed 8 rows at a time), no horizontal sums; the same bits either way. R >= 1.
void ck_low_rank_rows(const float *B, long N, long R, const float *h, long ldh, long T, float *y, long ldy, float alpha);

/// `ck_low_rank_rows` without AVX2 (the portable build), for tests.
void ck_low_rank_rows_portable(const float *B, long N, long R, const float *h, long ldh, long T, float *y, long ldy,
                               float alpha);

/// `ck_dense_rows` on a W held as IEEE fp16 bits (decode rows' fp16 copies of LoRA's A, `HalfMatrix`):
/// each value converted exactly as it is loaded (F16C where the CPU has it, else plain C), every operation
/// after the load `ck_dense_rows`' own, so the result is `ck_dense_rows`' bits on the converted W, in every
/// build and for every T; no fp32 copy of W is written.
void ck_dense_rows_half(const uint16_t *w, long K, long r0, long r1, const float *x, long ldx, long T,
                        float *y, long ldy, float alpha, int accumulate);

/// `ck_dense_rows_half` without AVX2 / F16C (the portable build), for tests.
void ck_dense_rows_half_portable(const uint16_t *w, long K, long r0, long r1, const float *x, long ldx, long T,
                                 float *y, long ldy, float alpha, int accumulate);

/// `ck_low_rank_rows` on a B held as IEEE fp16 bits (LoRA's B, `HalfMatrix`), converted exactly as it is
/// loaded (the AVX2 body's 8-row transpose loads and converts): `ck_low_rank_rows`' bits on the converted B.
void ck_low_rank_rows_half(const uint16_t *B, long N, long R, const float *h, long ldh, long T, float *y, long ldy,
                           float alpha);

/// `ck_low_rank_rows_half` without AVX2 / F16C (the portable build), for tests.
void ck_low_rank_rows_half_portable(const uint16_t *B, long N, long R, const float *h, long ldh, long T, float *y,
                                    long ldy, float alpha);

/// out[i] = the IEEE fp16 bits of w[i] * scale rounded to nearest even (the fp32 product first; a finite
/// product past fp16's range gives infinity), i < n: how `HalfMatrix` encodes an adapter's matrices when it
/// loads (F16C where the CPU has it, else plain C; the same bits).
void ck_float_to_half_scaled(const float *w, long n, float scale, uint16_t *out);

/// `ck_float_to_half_scaled` without F16C (the portable build), for tests.
void ck_float_to_half_scaled_portable(const float *w, long n, float scale, uint16_t *out);

/// RMSNorm rows (rmsnorm_rows.c): Y[t, i] = w[i] * (X[t, i] * r_t), r_t = 1 / sqrt(Σ_i X[t, i]² / D + eps),
/// X, Y [T, D] (Y may alias X). The sum of squares is 8 lanes (lane l: i ≡ l mod 8, in order; the D % 8 tail
/// into lanes 0..) then a fixed tree; AVX2 where the CPU has it, `_ref` the portable twin, the same bits.
void ck_rmsnorm_rows(const float *x, const float *w, float eps, long T, long D, float *y);
void ck_rmsnorm_rows_ref(const float *x, const float *w, float eps, long T, long D, float *y);
/// Backward for a frozen weight: dX[t, i] += (r·w[i])·dY[t, i] - X[t, i]·c, c = r³ · Σ_i (w[i]·dY[t, i])·X[t, i] / D,
/// both sums in the forward's lane order; the same bits with AVX2 or without.
void ck_rmsnorm_backward_rows(const float *x, const float *w, float eps, const float *dy, long T, long D, float *dx);
void ck_rmsnorm_backward_rows_ref(const float *x, const float *w, float eps, const float *dy, long T, long D, float *dx);

/// A row kernel's signature (`ck_q4_1_rows` and the others above).
typedef void (*ck_rows_fn)(const uint8_t *blocks, long blocksPerRow, long r0, long r1,
                           const float *x, long T, float *y, long ldy, int accumulate);

/// One row kernel call split into chunks of `per` weight rows, for `ck_pool_run` with `ck_rows_task`:
/// a decode GEMV handed to the pool without a Swift closure (so without an allocation per call).
struct ck_rows_job {
    ck_rows_fn kernel;
    const uint8_t *blocks;
    long blocksPerRow, n, per;
    const float *x;
    long T;
    float *y;
    long ldy;
    int accumulate;
};

/// Runs chunk `index` of the `struct ck_rows_job` at ctx.
void ck_rows_task(void *ctx, long index);

/// A persistent pool of worker threads running one parallel region at a time (`Parallel.forEachChunk`).
/// Idle workers spin for `spinNanos` waiting for the next region, then park.
struct ck_pool;
typedef void (*ck_task_fn)(void *ctx, long index);

/// A pool of `workers` threads (0: the caller runs everything); NULL if memory ran out.
struct ck_pool *ck_pool_create(int workers, long spinNanos);

/// Threads the pool started.
int ck_pool_workers(const struct ck_pool *pool);

/// Runs fn(ctx, i) for every 0 <= i < tasks on the caller and the pool's workers, each index once, and
/// returns 1 when all have finished; returns 0 at once (running nothing) when another region holds the
/// pool (a nested or concurrent call: the caller then runs its tasks another way).
int ck_pool_run(struct ck_pool *pool, long tasks, ck_task_fn fn, void *ctx);

// Dequantize-into-tile kernels (tile_kernels.c), AVX2 + F16C; call only when `ck_cpu_has_avx2_fma`.
// Each writes exactly what its portable Swift twin writes (fp32, the same roundings).

/// blockCount consecutive Q4_1 blocks at src into dst[blockCount * 32]: w = q * d + m (multiply, then add).
void ck_dequant_q4_1(const uint8_t *src, long blockCount, float *dst);

/// blockCount consecutive Q8_0 blocks at src into dst[blockCount * 32]: w = q * d.
void ck_dequant_q8_0(const uint8_t *src, long blockCount, float *dst);

/// blockCount NF4 blocks of 64 elements (32 packed bytes each, the first element in the HIGH nibble)
/// into dst[blockCount * 64]: w = code[index] * absmax[b], code the 16 NF4 values.
void ck_dequant_nf4(const uint8_t *packed, const float *absmax, long blockCount, const float *code, float *dst);

// Prompt rows through a packed weight panel (panel_rows.c): `QuantizedTiles.forwardChunksConcurrently`'s
// product for chunks of at most `QuantizedTiles.panelRowsLimit` rows.

/// Weight rows per panel.
#define CK_PANEL_WIDTH 32

/// width <= 32 rows of a row-major fp32 tile [width, K] into a k-major panel [K, 32]:
/// panel[k * 32 + i] = tile[i * K + k], +0 for width <= i < 32. Data movement only (any CPU, any build: the
/// same panel).
void ck_panel_pack(const float *tile, long width, long K, float *panel);

/// For j < count, m = rows[j], i < width: Y[m, i] (= or +=) Σ_k X[m, k] · W[i, k], W the panel's weight
/// rows; X [*, ldx], Y [*, ldy] (y points at the panel's first output column). Per (m, i) one fixed chain:
/// acc = +0, acc = fma(X[m, k], W[i, k], acc) for k = 0..K-1 in order, then Y = acc or Y = Y + acc; so
/// its bits depend on neither count, the other rows, the row's position in `rows` nor the panel.
/// `_avx512` (AVX-512F; call only when `ck_cpu_has_avx512vl`), `_avx2` (AVX2 + FMA; only when
/// `ck_cpu_has_avx2_fma`) and `_portable` (fmaf) give the same bits.
void ck_panel_rows_avx512(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                          long count, float *y, long ldy, int accumulate);
void ck_panel_rows_avx2(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                        long count, float *y, long ldy, int accumulate);
void ck_panel_rows_portable(const float *panel, long width, long K, const float *x, long ldx, const long *rows,
                            long count, float *y, long ldy, int accumulate);

// Elementwise kernels with exp (elementwise_kernels.c): AVX2 + FMA bodies (call only when
// `ck_cpu_has_avx2_fma`) and portable twins `*_ref` giving the same bits. exp is Cephes' expf polynomial.

/// exp(x) as the kernels compute it, one value (the portable twin; for tests).
float ck_exp_ref(float x);
/// A[i] = G[i] / (1 + exp(-G[i])) * U[i], i < n (A may alias G).
/// Dropout keep-mask bits for `count` elements into bits[(count + 63) / 64] (element i: bit i % 64 of
/// word i / 64, 1 = kept; bits past count are 0): kept iff a 32-bit hash of (i, k1, k2) >= threshold
/// (dropout_mask.c). AVX2 and the portable twin give the same bits.
void ck_dropout_mask(uint64_t *bits, long count, uint32_t k1, uint32_t k2, uint32_t threshold);
void ck_dropout_mask_ref(uint64_t *bits, long count, uint32_t k1, uint32_t k2, uint32_t threshold);

void ck_swiglu(const float *g, const float *u, float *a, long n);
void ck_swiglu_ref(const float *g, const float *u, float *a, long n);
/// s = 1 / (1 + exp(-G)); dU = dA * G * s; dG = dA * U * s * (1 + G * (1 - s)), elementwise, i < n.
void ck_swiglu_backward(const float *g, const float *u, const float *dA, float *dG, float *dU, long n);
void ck_swiglu_backward_ref(const float *g, const float *u, const float *dA, float *dG, float *dU, long n);
/// In-place softmax of x[0..<n] (max-subtracted; the sum in 8 lanes, i in lane i mod 8, then a fixed
/// tree); returns max + log(sum); -inf for n = 0.
float ck_softmax(float *x, long n);
float ck_softmax_ref(float *x, long n);
/// log Σ exp(x[i]) over i < n: max-subtracted, exps widened to double and summed as in ck_softmax.
double ck_logsumexp(const float *x, long n);
double ck_logsumexp_ref(const float *x, long n);
/// x[i] = exp(x[i] - sub) * scale, i < n.
void ck_exp_scaled(float *x, long n, float sub, float scale);
void ck_exp_scaled_ref(float *x, long n, float sub, float scale);
/// p[i] = exp(p[i] - lse); d[i] = p[i] * (d[i] - dsum), i < n.
void ck_attention_backward_row(float *p, float *d, long n, float lse, float dsum);
void ck_attention_backward_row_ref(float *p, float *d, long n, float lse, float dsum);
/// Rotary embedding, rotate-half layout, in place: X[T, heads*E]; for token t, head h, i < E/2,
/// with c = cs[t*(E/2) + i], s = sign * sn[t*(E/2) + i]:
/// (x[i], x[i + E/2]) <- (x[i]*c - x[i + E/2]*s, x[i + E/2]*c + x[i]*s). sign is 1 or -1 (the inverse).
void ck_rope(float *x, long T, long heads, long E, const float *cs, const float *sn, float sign);
void ck_rope_ref(float *x, long T, long heads, long E, const float *cs, const float *sn, float sign);

// ---- int8 activations for decode rows (q8_rows.c, q8_rows_avx2.c, q8_rows_vnni.c; branch q8act) ----
//
// A decode row's input x [T, K] is quantized per row per block of 32 (llama.cpp's Q8_0 / Q8_1 activation
// blocks, ggml-common.h): d = amax / 127, q = round(x / d) in -127..127 (round to nearest, ties to even;
// q = 0 when d = 0), and for Q4_1's min term s = d * Σ q (the block's 32 q, one rounding). d and s stay
// fp32. The weight blocks are then multiplied with integer dots, exact in int32.
//
// Layout, for Tp = T rounded up to a multiple of 8 (rows in groups of 8; the padding rows are zeros):
// q [Tp, K] int8 row-major; d and s [Tp / 8, K / 32, 8] fp32: row t's block b at ((t / 8) * (K / 32) + b) * 8
// + t % 8, so the 8 rows of a group are side by side per block.

/// Weight formats of the integer-dot kernels.
enum { CK_Q8_FMT_Q4_1 = 0, CK_Q8_FMT_Q8_0 = 1 };

/// Quantizes x [T, K] (K a multiple of 32) into q, d and s as above (Tp rows each, padding included).
/// amax is taken in 8 lanes (element i in lane i mod 8) then a fixed tree (`maxps` semantics). AVX2
/// (call only when `ck_cpu_has_avx2_fma`); `_ref` is the portable twin, the same bits.
void ck_q8_quantize_rows(const float *x, long T, long K, int8_t *q, float *d, float *s);
void ck_q8_quantize_rows_ref(const float *x, long T, long K, int8_t *q, float *d, float *s);

/// Y[t, r] (= or +=) Σ_k W[r, k] · X[t, k] for weight rows r0 <= r < r1 and t < T with X quantized by
/// `ck_q8_quantize_rows` (xq, xd, xs in its layout, the padding included), W in Q4_1 blocks (see
/// `ck_q4_1_rows`), K = 32 * bpr, Y [T, ldy]. Per (t, r), one fp32 accumulator, block by block:
/// isum = Σ q_w · q_a over the block's 32 elements (int32, exact; float(isum) exact, |isum| < 2^24);
/// p = (d_w * d_a) * float(isum); p = fma(m_w, s_a, p); acc = acc + p; y = acc (or y + acc). No
/// horizontal sum: the AVX2 build reduces 8 outputs' integer dots into one vector and does this float work for
/// the 8 in its lanes; the VNNI build computes the dots with weight rows in the lanes (q8_tile.h's row-lane
/// tiles), one vector per input. The result does not depend on T, r0, r1, the tile or the build, so every
/// row is the same bits alone or in a batch, in the AVX2, VNNI and portable builds.
void ck_q4_1_q8_rows(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                     const float *xs, long T, float *y, long ldy, int accumulate);
/// As `ck_q4_1_q8_rows` for Q8_0 blocks (w = d_w * q_w; no min term, xs unread).
void ck_q8_0_q8_rows(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                     const float *xs, long T, float *y, long ldy, int accumulate);
/// The AVX-512 VNNI builds (256-bit `vpdpbusd`); call only when `ck_cpu_has_avx512vnni`.
void ck_q4_1_q8_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                          const float *xs, long T, float *y, long ldy, int accumulate);
void ck_q8_0_q8_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                          const float *xs, long T, float *y, long ldy, int accumulate);
/// The portable twins (scalar C, `fmaf`), the same bits.
void ck_q4_1_q8_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                         const float *xs, long T, float *y, long ldy, int accumulate);
void ck_q8_0_q8_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                         const float *xs, long T, float *y, long ldy, int accumulate);

// Two-digit inputs (the output head's under the default `DecodeActivations.q8`): per row per block of 32,
// e = amax / 32512 (32512 = 127 * 256), unit = 256 * e (exact), q_hi = rint(clamp(x / unit, -127, 127)),
// r = fma(-unit, q_hi, x) (x - unit * q_hi, one rounding), q_lo = rint(clamp(r / e, -127, 127)), both 0 when
// e = 0; so x ~ e * (256 * q_hi + q_lo) within e * (1 + 2^-8) (|x / unit - q_hi| <= 1/2 + 128u, so
// |r / e| <= 128 + 2^-9; the clamp of a low digit at 128 costs at most one low unit), about 15 bits where
// the int8 input has 8. d = e and s = e * Σ (256 q_hi + q_lo) (|Σ| <= 32 * 32,639 < 2^24: one rounding).
// Layout as above with q [Tp, 2K]: row t's block b at (t * K + b * 32) * 2, its 32 high digits then its 32
// low digits. The kernels dot each weight block with both digits (the same unpacked weight) and combine the
// two exact block sums as isum = hi * 256 + lo in int32: |hi|, |lo| <= 32 * 128 * 127 = 520,192 for Q8_0
// (|q_w| <= 128) and 32 * 15 * 127 = 60,960 for Q4_1, so |isum| <= 133,689,344 < 2^27 (Q8_0) and
// <= 15,666,720 < 2^24 (Q4_1). Then the same float work as one digit with d = e: float(isum) is exact for
// Q4_1 and one rounding (nearest even) for Q8_0 above 2^24.
void ck_q8x2_quantize_rows(const float *x, long T, long K, int8_t *q, float *d, float *s);
void ck_q8x2_quantize_rows_ref(const float *x, long T, long K, int8_t *q, float *d, float *s);
/// `ck_q4_1_q8_rows` / `ck_q8_0_q8_rows` (and their VNNI builds and portable twins) on two-digit inputs.
void ck_q4_1_q8x2_rows(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                       const float *xs, long T, float *y, long ldy, int accumulate);
void ck_q8_0_q8x2_rows(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                       const float *xs, long T, float *y, long ldy, int accumulate);
void ck_q4_1_q8x2_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                            const float *xs, long T, float *y, long ldy, int accumulate);
void ck_q8_0_q8x2_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                            const float *xs, long T, float *y, long ldy, int accumulate);
void ck_q4_1_q8x2_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                           const float *xs, long T, float *y, long ldy, int accumulate);
void ck_q8_0_q8x2_rows_ref(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                           const float *xs, long T, float *y, long ldy, int accumulate);

/// 1 when the CPU has AVX-512VL and AVX-512 VNNI (and AVX2 + FMA + F16C), else 0.
int ck_cpu_has_avx512vnni(void);

/// An integer-dot row kernel's signature.
typedef void (*ck_q8_rows_fn)(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                              const float *xs, long T, float *y, long ldy, int accumulate);

/// One integer-dot kernel call split into chunks of `per` weight rows, for `ck_pool_run` with `ck_q8_rows_task`.
struct ck_q8_rows_job {
    ck_q8_rows_fn kernel;
    const uint8_t *blocks;
    long blocksPerRow, n, per;
    const int8_t *xq;
    const float *xd, *xs;
    long T;
    float *y;
    long ldy;
    int accumulate;
};

/// Runs chunk `index` of the `struct ck_q8_rows_job` at ctx.
void ck_q8_rows_task(void *ctx, long index);
// ---- end of int8 activations ----

// ---- several int8-activation products as one pool region (q8_rows_group.c; branch q8def) ----

/// Up to `CK_Q8_GROUP_MAX` integer-dot products over the same quantized input (a layer's q/k/v, or
/// gate/up, on decode rows), for `ck_pool_run` with `ck_q8_rows_group_task`: chunk c belongs to part p
/// when first[p] <= c < first[p + 1] (first[0] = 0, first[parts] = the total) and runs as chunk
/// c - first[p] of job[p] (`ck_q8_rows_task`): the same kernel calls as each part's own region, so the
/// same bits, with one fork and join instead of one per part.
#define CK_Q8_GROUP_MAX 3
struct ck_q8_rows_group {
    long parts;
    long first[CK_Q8_GROUP_MAX + 1];
    struct ck_q8_rows_job job[CK_Q8_GROUP_MAX];
};

/// Runs chunk `index` of the `struct ck_q8_rows_group` at ctx.
void ck_q8_rows_group_task(void *ctx, long index);
// ---- end of several int8-activation products ----

// ---- decode-row attention (attention_rows.c) ----
/// One decode row's attention for one head against its sequence's keys: scores[j] = scale * (q · K[j])
/// for lo <= j < S (q [E], K and V [S, ldk] rows of the head's columns), the softmax over them in place
/// (`ck_softmax`, or `ck_softmax_ref` when simdSoftmax is 0), out[e] = Σ_j scores[j] * V[j, e] in order
/// of j; returns the log-sum-exp. scores holds S floats (0..<lo untouched). Each score is 8 lanes of
/// products in order plus a fixed tree, each output one sum in order of j: the same bits with AVX2
/// or without, whatever other rows are computed beside it.
float ck_attention_row(const float *q, const float *K, const float *V, long ldk, long E, long lo, long S,
                       float scale, float *scores, float *out, int simdSoftmax);
/// `ck_attention_row` without AVX2 (the portable build), for tests.
float ck_attention_row_portable(const float *q, const float *K, const float *V, long ldk, long E, long lo, long S,
                                float scale, float *scores, float *out, int simdSoftmax);
// ---- end of decode-row attention ----

#endif
