// A persistent worker pool for one parallel region at a time (see CKernels.h, `ck_pool_*`).
//
// Workers wait for a new region by spinning on its generation number for a short while (a decode step
// issues a region every few tens of microseconds, and waking a parked thread costs about as much as the
// region's work), then park on a condition variable. Tasks are handed out by an atomic counter, so the
// caller and whichever workers are awake share them; the caller waits for every task to finish.
#define _GNU_SOURCE
#include "CKernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CK_RELAX() _mm_pause()
#else
#define CK_RELAX() ((void)0)
#endif

/// One parallel region: lives on the caller's stack for the duration of `ck_pool_run`.
struct ck_job {
    long tasks;
    ck_task_fn fn;
    void *ctx;
    _Atomic long next;           // next task index
    _Atomic long done;           // tasks finished
};

struct ck_pool {
    pthread_mutex_t lock;        // held by run: one region at a time
    pthread_mutex_t parkLock;    // parking workers and the waker
    pthread_cond_t park;
    _Atomic long generation;     // incremented once per region (the pool lives as long as the process)
    _Atomic int sleepers;        // workers parked (or about to park) on `park`
    _Atomic int active;          // workers that may be touching `job`
    struct ck_job *_Atomic job;  // the current region, NULL between regions
    long spinNanos;
    int workers;
    pthread_t threads[];
};

static long ck_now_nanos(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/// Runs tasks of `job` until none is left.
static void ck_job_drain(struct ck_job *job) {
    const long tasks = job->tasks;
    for (;;) {
        long i = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (i >= tasks) return;
        job->fn(job->ctx, i);
        atomic_fetch_add_explicit(&job->done, 1, memory_order_release);
    }
}

static void *ck_pool_worker(void *arg) {
    struct ck_pool *p = arg;
    long seen = atomic_load_explicit(&p->generation, memory_order_acquire);
    for (;;) {
        long g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g == seen) {
            // Spin for spinNanos (the clock read every 64 pauses), then park.
            long start = ck_now_nanos();
            for (;;) {
                for (int i = 0; i < 64; i++) {
                    CK_RELAX();
                    g = atomic_load_explicit(&p->generation, memory_order_acquire);
                    if (g != seen) break;
                }
                if (g != seen || ck_now_nanos() - start > p->spinNanos) break;
            }
            if (g == seen) {
                pthread_mutex_lock(&p->parkLock);
                atomic_fetch_add(&p->sleepers, 1);   // seq_cst: ordered against run's generation increment
                while ((g = atomic_load(&p->generation)) == seen) pthread_cond_wait(&p->park, &p->parkLock);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->parkLock);
            }
        }
        seen = g;
        // `active` before reading `job`: run does not return (and its job does not go out of scope)
        // while a worker that may have read its pointer is active. A stale wake-up finds NULL, a
        // finished job (nothing left to claim) or the next region's job, all safe to drain.
        atomic_fetch_add(&p->active, 1);
        struct ck_job *job = atomic_load(&p->job);
        if (job) ck_job_drain(job);
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_release);
    }
    return NULL;
}

struct ck_pool *ck_pool_create(int workers, long spinNanos) {
    if (workers < 0) workers = 0;
    struct ck_pool *p = calloc(1, sizeof(struct ck_pool) + (size_t)workers * sizeof(pthread_t));
    if (!p) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->parkLock, NULL);
    pthread_cond_init(&p->park, NULL);
    p->spinNanos = spinNanos;
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, ck_pool_worker, p) != 0) break;
        pthread_setname_np(p->threads[i], "lora-pool");   // seen in top -H, perf, and the pool's tests
        p->workers = i + 1;
    }
    return p;
}

int ck_pool_workers(const struct ck_pool *p) { return p ? p->workers : 0; }

int ck_pool_run(struct ck_pool *p, long tasks, ck_task_fn fn, void *ctx) {
    if (tasks <= 0) return 1;
    if (!p || pthread_mutex_trylock(&p->lock) != 0) return 0;   // another region runs: the caller decides
    struct ck_job job = {.tasks = tasks, .fn = fn, .ctx = ctx};
    atomic_init(&job.next, 0);
    atomic_init(&job.done, 0);
    atomic_store(&p->job, &job);
    atomic_fetch_add(&p->generation, 1);   // seq_cst: after the job is published, before the sleepers check
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->parkLock);
        pthread_cond_broadcast(&p->park);
        pthread_mutex_unlock(&p->parkLock);
    }
    ck_job_drain(&job);
    // Every task is claimed; wait for the ones workers are still running, then for every worker to
    // have let go of the job.
    for (long spins = 1; atomic_load_explicit(&job.done, memory_order_acquire) < tasks; spins++) {
        CK_RELAX();
        if ((spins & 1023) == 0) sched_yield();   // a descheduled worker needs this core
    }
    atomic_store(&p->job, NULL);
    for (long spins = 1; atomic_load(&p->active) > 0; spins++) {
        CK_RELAX();
        if ((spins & 1023) == 0) sched_yield();
    }
    pthread_mutex_unlock(&p->lock);
    return 1;
}
