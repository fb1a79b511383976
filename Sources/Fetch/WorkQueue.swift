import Foundation

/// Hands out item indices to worker threads and collects their results.
final class WorkQueue<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var slots: [Result<T, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func take() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard next < slots.count else { return nil }
        next += 1
        return next - 1
    }

    func store(_ result: Result<T, Error>, at i: Int) {
        lock.lock(); defer { lock.unlock() }
        slots[i] = result
    }

    /// Every result in order; throws the first failure.
    func results() throws -> [T] {
        lock.lock(); defer { lock.unlock() }
        return try slots.map { try $0!.get() }
    }
}
