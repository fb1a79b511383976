import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The threads one piece of work may use: the budget `Parallel.forEachChunk` splits by.
///
/// A process can hold several budgets at once (`lora serve --workers`: the serving scheduler and
/// each job slot), so the budget is not a process global: the thread that does the work runs
/// under its context (`ComputeContext.run`), and the chunks `Parallel.forEachChunk` hands to
/// other threads run under the caller's context too. Work outside any `run` uses
/// `processDefault` (what `--threads` of a one-budget command sets).
///
/// OpenBLAS (0.3.21 here) has one thread count for the whole process; `Parallel.configure`
/// sets it. A process with several budgets gives OpenBLAS the smallest of them, so no call
/// exceeds the budget of the work that made it (`ComputeContext.blasThreads(for:)`).
public struct ComputeContext: Sendable, Equatable, CustomStringConvertible {
    /// Threads of our pool this work may use (at least 1).
    public let threads: Int

    public init(threads: Int) { self.threads = max(1, threads) }

    public var description: String { "\(threads) thread\(threads == 1 ? "" : "s")" }

    /// The machine's cores.
    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    nonisolated(unsafe) private static var _processDefault = ComputeContext(threads: ProcessInfo.processInfo.activeProcessorCount)
    private static let lock = NSLock()

    /// The context of work not run under `run` (set by `Parallel.configure`).
    public static var processDefault: ComputeContext {
        get { lock.lock(); defer { lock.unlock() }; return _processDefault }
        set { lock.lock(); _processDefault = newValue; lock.unlock() }
    }

    /// The calling thread's context: the innermost `run` on this thread, else `processDefault`.
    public static var current: ComputeContext {
        guard let key else { return processDefault }
        let raw = Int(bitPattern: pthread_getspecific(key))
        return raw > 0 ? ComputeContext(threads: raw) : processDefault
    }

    /// Runs `body` on this thread under `context` (and restores the previous context after).
    public static func run<T>(_ context: ComputeContext, _ body: () throws -> T) rethrows -> T {
        guard let key else { return try body() }
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: context.threads))
        defer { pthread_setspecific(key, previous) }
        return try body()
    }

    /// OpenBLAS's process-wide thread count for a process running these budgets at once: the
    /// smallest, so a matrix product made under any of them stays within that budget.
    public static func blasThreads(for contexts: [ComputeContext]) -> Int {
        contexts.map(\.threads).min() ?? processDefault.threads
    }

    /// The thread-specific slot holding the current context's thread count (0: none); nil only if
    /// the system refused a key, and then every thread uses `processDefault`. (Not created inside a
    /// `precondition`: -Ounchecked, which this target is built with, does not evaluate its condition.)
    private static let key: pthread_key_t? = {
        var k = pthread_key_t()
        return pthread_key_create(&k, nil) == 0 ? k : nil
    }()
}
