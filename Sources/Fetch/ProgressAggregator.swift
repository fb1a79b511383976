import Foundation

/// Sums per-file progress into one `FetchProgress` and rate-limits the callback.
final class ProgressAggregator: @unchecked Sendable {
    private let callback: ((FetchProgress) -> Void)?
    private let lock = NSLock()
    private var files: [String: (done: Int64, total: Int64?)] = [:]
    private var order: [String] = []
    private var completed = 0
    private var lastEmit = Date.distantPast

    init(callback: ((FetchProgress) -> Void)?) { self.callback = callback }

    func register(_ names: [String]) {
        lock.lock(); defer { lock.unlock() }
        for name in names where files[name] == nil {
            files[name] = (0, nil)
            order.append(name)
        }
    }

    func update(_ name: String, completed done: Int64, total: Int64?) {
        lock.lock(); defer { lock.unlock() }
        files[name] = (done, total)
        emit(name, force: false)
    }

    func finished(_ name: String, size: Int64) {
        lock.lock(); defer { lock.unlock() }
        files[name] = (size, size)
        completed += 1
        emit(name, force: true)
    }

    func absent(_ name: String) {
        lock.lock(); defer { lock.unlock() }
        files[name] = nil
        order.removeAll { $0 == name }
    }

    private func emit(_ name: String, force: Bool) {
        guard let callback else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastEmit) >= 0.1 else { return }
        lastEmit = now
        var done: Int64 = 0
        var total: Int64? = 0
        for (d, t) in files.values {
            done += d
            if let t, let sum = total { total = sum + t } else { total = nil }
        }
        callback(FetchProgress(file: name, completedBytes: done, totalBytes: total,
                               filesCompleted: completed, filesTotal: order.count))
    }
}
