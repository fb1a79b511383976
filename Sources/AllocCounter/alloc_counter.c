// An allocation counter preloaded into a process (LD_PRELOAD): it defines the C allocation functions,
// counts each call in one atomic counter, and hands the call to glibc's own allocator through its
// exported `__libc_*` entry points (`nm -D libc.so.6`: __libc_malloc, __libc_calloc, __libc_realloc,
// __libc_memalign, GLIBC_2.2.5). Looking the next definition up with dlsym(RTLD_NEXT) instead can
// itself allocate (dlerror's buffer) before the lookup has an answer. `free` is
// not interposed: the memory is glibc's either way.
//
// Swift's runtime allocates through malloc, posix_memalign and aligned_alloc (swift_slowAlloc), so
// every Swift object, array buffer, closure context and box is counted, on every thread.
#include "AllocCounter.h"
#include <errno.h>       // (any libc header defines __GLIBC__ on glibc)
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#if defined(__GLIBC__)   // glibc's `__libc_*` entry points; elsewhere the library defines nothing (the bench says so)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static _Atomic unsigned long lora_allocations;

#define COUNT() atomic_fetch_add_explicit(&lora_allocations, 1, memory_order_relaxed)

__attribute__((visibility("default"))) unsigned long lora_alloc_count(void) {
    return atomic_load_explicit(&lora_allocations, memory_order_relaxed);
}

__attribute__((visibility("default"))) void *malloc(size_t size) {
    COUNT();
    return __libc_malloc(size);
}

__attribute__((visibility("default"))) void *calloc(size_t count, size_t size) {
    COUNT();
    return __libc_calloc(count, size);
}

__attribute__((visibility("default"))) void *realloc(void *p, size_t size) {
    COUNT();
    return __libc_realloc(p, size);
}

__attribute__((visibility("default"))) void *memalign(size_t alignment, size_t size) {
    COUNT();
    return __libc_memalign(alignment, size);
}

__attribute__((visibility("default"))) void *aligned_alloc(size_t alignment, size_t size) {
    COUNT();
    return __libc_memalign(alignment, size);
}

__attribute__((visibility("default"))) void *valloc(size_t size) {
    COUNT();
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

// POSIX: the alignment must be a power of two and a multiple of sizeof(void *), else EINVAL.
__attribute__((visibility("default"))) int posix_memalign(void **out, size_t alignment, size_t size) {
    COUNT();
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
#else
typedef int lora_alloc_counter_needs_glibc;   // (an empty translation unit is not ISO C)
#endif
