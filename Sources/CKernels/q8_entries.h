// The two exported entry points of one build of the integer-dot decode-row kernels (q8_rows_avx2.c,
// q8_rows_vnni.c): on x86-64 the tile driver `ck8_rows` of q8_tile.h, compiled under that file's target
// attribute; elsewhere the portable twin. `CK8_ENTRIES(SUFFIX)` defines ck_q4_1_q8_rows##SUFFIX,
// ck_q8_0_q8_rows##SUFFIX (int8 inputs) and ck_q4_1_q8x2_rows##SUFFIX, ck_q8_0_q8x2_rows##SUFFIX (two-digit
// inputs) with the signature of `ck_q8_rows_fn` (CKernels.h).
#ifndef CK_Q8_ENTRIES_H
#define CK_Q8_ENTRIES_H
#include "CKernels.h"

#if defined(__x86_64__)
#define CK8_ENTRY_BODY(FMT, DIGITS, REF) ck8_rows(FMT, DIGITS, blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate)
#else
#define CK8_ENTRY_BODY(FMT, DIGITS, REF) REF(blocks, bpr, r0, r1, xq, xd, xs, T, y, ldy, accumulate)
#endif

#define CK8_ENTRY(NAME, FMT, DIGITS, REF)                                                                            \
    void NAME(const uint8_t *blocks, long bpr, long r0, long r1, const int8_t *xq, const float *xd,          \
              const float *xs, long T, float *y, long ldy, int accumulate) {                                 \
        CK8_ENTRY_BODY(FMT, DIGITS, REF);                                                                            \
    }

#define CK8_ENTRIES(SUFFIX)                                                                                  \
    CK8_ENTRY(ck_q4_1_q8_rows##SUFFIX, CK_Q8_FMT_Q4_1, 1, ck_q4_1_q8_rows_ref)                              \
    CK8_ENTRY(ck_q8_0_q8_rows##SUFFIX, CK_Q8_FMT_Q8_0, 1, ck_q8_0_q8_rows_ref)                              \
    CK8_ENTRY(ck_q4_1_q8x2_rows##SUFFIX, CK_Q8_FMT_Q4_1, 2, ck_q4_1_q8x2_rows_ref)                          \
    CK8_ENTRY(ck_q8_0_q8x2_rows##SUFFIX, CK_Q8_FMT_Q8_0, 2, ck_q8_0_q8x2_rows_ref)

#endif
