// Counts heap allocations of a process it is preloaded into (LD_PRELOAD=libLoraAllocCounter.so).
// Never linked into a target: `lora bench decode --count-allocations` finds the counter with dlsym.
#pragma once

/// Allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc) made by
/// every thread of the process since it started.
unsigned long lora_alloc_count(void);
