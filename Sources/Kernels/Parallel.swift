import Dispatch
import Foundation

/// The project's thread budget for its own kernels (OpenBLAS has its own, set with `BLAS.setThreads`).
public enum Parallel {
    nonisolated(unsafe) private static var _threads: Int = ProcessInfo.processInfo.activeProcessorCount

    /// Threads used by `forEachChunk`. `configure(threads:)` sets this and OpenBLAS's together.
    public static var threads: Int { _threads }

    /// Sets every thread pool of the process: ours and OpenBLAS's. Call once at start-up.
    public static func configure(threads: Int?) {
        let n = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        _threads = n
        BLAS.setThreads(n)
    }

    /// Splits 0..<count into at most `threads` contiguous chunks and runs `body(range)` on each,
    /// in parallel when the work is large enough (`minChunk` items per chunk).
    public static func forEachChunk(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(_threads, max(1, count / max(1, minChunk)))
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * per, hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }
}
