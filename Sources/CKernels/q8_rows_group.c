// Several integer-dot products over one quantized input as one pool region (see CKernels.h,
// `struct ck_q8_rows_group`). Only hands out the parts' chunks: each chunk is the same kernel call
// `ck_q8_rows_task` makes for that part alone, so no output changes a bit.
#include "CKernels.h"

void ck_q8_rows_group_task(void *ctx, long c) {
    struct ck_q8_rows_group *g = ctx;
    long p = 0;
    while (p + 1 < g->parts && c >= g->first[p + 1]) p++;
    ck_q8_rows_task(&g->job[p], c - g->first[p]);
}
