import Dispatch
import Foundation

/// Splitting work over threads within the calling work's budget (`ComputeContext.current`).
public enum Parallel {
    /// Threads `forEachChunk` uses on this thread now (the current context's).
    public static var threads: Int { ComputeContext.current.threads }

    /// Sets the process's default budget (work outside `ComputeContext.run`) and OpenBLAS's thread
    /// count; `blasThreads` defaults to the same number. Call once at start-up.
    public static func configure(threads: Int?, blasThreads: Int? = nil) {
        let n = max(1, threads ?? ComputeContext.cores)
        ComputeContext.processDefault = ComputeContext(threads: n)
        BLAS.setThreads(blasThreads ?? n)
    }

    /// Splits 0..<count into at most `ComputeContext.current.threads` contiguous chunks and runs
    /// `body(range)` on each, in parallel when the work is large enough (`minChunk` items per
    /// chunk). Chunks run under the caller's context.
    public static func forEachChunk(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let context = ComputeContext.current
        let chunks = min(context.threads, max(1, count / max(1, minChunk)))
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * per, hi = min(count, lo + per)
            if lo < hi { ComputeContext.run(context) { body(lo..<hi) } }
        }
    }
}
