// The AVX2 build of the integer-dot decode-row kernels (q8_tile.h): maddubs + madd.
#include "q8_entries.h"
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#define CK_Q8_VNNI 0
#include "q8_tile.h"
CK8_ENTRIES()
#pragma clang attribute pop
#else
CK8_ENTRIES()
#endif
