// The AVX-512 VNNI build of the integer-dot decode-row kernels (q8_tile.h): 256-bit `vpdpbusd` (avx512vnni +
// avx512vl): one instruction per dot instead of two.
#include "q8_entries.h"
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"))), apply_to = function)
#define CK_Q8_VNNI 1
#include "q8_tile.h"
CK8_ENTRIES(_vnni)
#pragma clang attribute pop
#else
CK8_ENTRIES(_vnni)
#endif
