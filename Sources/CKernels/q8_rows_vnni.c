// The AVX-512 VNNI build of the integer-dot decode-row kernels (q8_tile.h): 256-bit `vpdpbusd` (avx512vnni +
// avx512vl): one instruction per dot instead of two.
#include "CKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"))), apply_to = function)
#define CK_Q8_VNNI 1
#include "q8_tile.h"

void ck_q4_1_q8_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                     const float *xs, long T, float *y, long ldy, int accumulate) {
    ck8_rows(CK_Q8_FMT_Q4_1, blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}

void ck_q8_0_q8_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                     const float *xs, long T, float *y, long ldy, int accumulate) {
    ck8_rows(CK_Q8_FMT_Q8_0, blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}
#pragma clang attribute pop
#else
void ck_q4_1_q8_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                     const float *xs, long T, float *y, long ldy, int accumulate) {
    ck_q4_1_q8_rows_ref(blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}
void ck_q8_0_q8_rows_vnni(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,
                     const float *xs, long T, float *y, long ldy, int accumulate) {
    ck_q8_0_q8_rows_ref(blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate);
}
#endif
