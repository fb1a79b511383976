import CKernels
import Dispatch
import Foundation

/// Splitting work over threads within the calling work's budget (`ComputeContext.current`).
///
/// One persistent pool (`ck_pool_*` in CKernels: cores - 1 workers beside the caller) runs one parallel
/// region per operation: idle workers spin for `spinNanos` before parking, so the regions of a decode
/// step (a few tens of microseconds apart) start without a thread wake-up or a dispatch queue hand-off.
/// A region that finds the pool busy (a nested call, or another budget's region at the same time)
/// runs on Dispatch's pool instead, as every region did before.
public enum Parallel {
    /// How long an idle worker spins for the next region before parking: about two GEMVs of a
    /// decode step, short enough that an sgemm's OpenBLAS threads soon have the cores to themselves.
    static let spinNanos = 100_000

    /// The process's pool (created on first use).
    nonisolated(unsafe) static let pool: OpaquePointer? = ck_pool_create(Int32(max(0, ComputeContext.cores - 1)), spinNanos)

    /// Whether regions run on the persistent pool (true) or on Dispatch's `concurrentPerform` (the
    /// hand-off every region used before the pool; `LORA_PARALLEL=dispatch` selects it, for A/B
    /// figures). Set once at start-up, never while a region runs.
    nonisolated(unsafe) public static var usePool = ProcessInfo.processInfo.environment["LORA_PARALLEL"] != "dispatch"

    /// Whether the calling thread is running a chunk of a parallel region (a product inside one is
    /// not split again: the region already has the threads).
    public static var insideRegion: Bool {
        guard let key = regionKey else { return false }
        return pthread_getspecific(key) != nil
    }

    private static let regionKey: pthread_key_t? = {
        var k = pthread_key_t()
        return pthread_key_create(&k, nil) == 0 ? k : nil
    }()

    /// Runs one chunk under the caller's context, marked as inside a region (a product inside it is
    /// not split again). `runTasks`' C tasks whose body is Swift call it with the caller's context.
    @inline(__always)
    public static func runChunk(_ context: ComputeContext, _ body: () -> Void) {
        guard let key = regionKey else { ComputeContext.run(context, body); return }
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, previous) }
        ComputeContext.run(context, body)
    }

    /// Threads `forEachChunk` uses on this thread now (the current context's).
    public static var threads: Int { ComputeContext.current.threads }

    /// Sets the process's default budget (work outside `ComputeContext.run`) and OpenBLAS's thread
    /// count; `blasThreads` defaults to the same number. Call once at start-up.
    public static func configure(threads: Int?, blasThreads: Int? = nil) {
        let n = max(1, threads ?? ComputeContext.cores)
        ComputeContext.processDefault = ComputeContext(threads: n)
        BLAS.setThreads(blasThreads ?? n)
    }

    /// How many chunks `forEachChunk` cuts `count` items into under `context` (1: run inline).
    @inline(__always)
    public static func chunkCount(_ count: Int, minChunk: Int = 1, chunksPerThread: Int = 1,
                                  context: ComputeContext = .current) -> Int {
        if count <= 0 || context.threads <= 1 { return 1 }
        return max(1, min(context.threads * max(1, chunksPerThread), max(1, count / max(1, minChunk))))
    }

    /// Runs the C task `fn(ctx, i)` for 0 <= i < tasks as one region of the pool; false (nothing run)
    /// when the pool is off or busy (a nested or concurrent region: run the tasks another way). For
    /// regions whose work is C (the decode GEMVs): unlike `forEachChunk`, no Swift closure is wrapped,
    /// so nothing is allocated. The tasks run without the caller's `ComputeContext` (C code has none).
    @inline(__always)
    public static func runTasks(_ tasks: Int, _ fn: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void,
                                _ ctx: UnsafeMutableRawPointer) -> Bool {
        usePool && ck_pool_run(pool, tasks, fn, ctx) != 0
    }

    /// What a pool task needs: the split and the caller's body and context.
    private struct Region {
        let count: Int
        let per: Int
        let context: ComputeContext
        let body: (Range<Int>) -> Void
    }

    /// Splits 0..<count into at most `ComputeContext.current.threads` contiguous chunks and runs
    /// `body(range)` on each, in parallel when the work is large enough (`minChunk` items per
    /// chunk). Chunks run under the caller's context. The split depends on `count`, `minChunk`,
    /// `chunksPerThread` and the budget only, never on which thread takes a chunk.
    ///
    /// `chunksPerThread` > 1 cuts the work finer than the threads (up to that many chunks per thread),
    /// for work whose chunks are independent of the split (each GEMV output row is computed whole):
    /// threads take chunks as they come, so one that starts late (woken from parking, or preempted on
    /// a loaded machine) does less instead of holding the others back.
    public static func forEachChunk(_ count: Int, minChunk: Int = 1, chunksPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let context = ComputeContext.current
        let chunks = chunkCount(count, minChunk: minChunk, chunksPerThread: chunksPerThread, context: context)
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            var region = Region(count: count, per: per, context: context, body: body)
            let ran = !usePool ? 0 : withUnsafeMutablePointer(to: &region) { rp in
                ck_pool_run(pool, chunks, { raw, c in
                    let r = raw!.assumingMemoryBound(to: Region.self)
                    let lo = c * r.pointee.per, hi = min(r.pointee.count, lo + r.pointee.per)
                    if lo < hi { Parallel.runChunk(r.pointee.context) { r.pointee.body(lo..<hi) } }
                }, rp)
            }
            if ran != 0 { return }
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per, hi = min(count, lo + per)
                if lo < hi { runChunk(context) { body(lo..<hi) } }
            }
        }
    }
}
