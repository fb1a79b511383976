// The AVX-512 VNNI build of the integer-dot decode-row kernels (q8_tile.h): `vpdpbusd` (avx512vnni; 256-bit
// with avx512vl, 512-bit in the Q4_1 row-lane tiles, which also take avx512bw's byte shifts): one instruction per
// dot instead of two. Chosen where the CPU has all four (ck_cpu_has_avx512vnni).
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
