import Foundation
import Logging
import Metrics
import Model
import Training

/// Loaded adapters by artifact sha256, least recently used first out, within a byte budget.
///
/// - Concurrent first requests for one adapter load it once: the first caller loads, the others
///   wait for that load (and share its error, if it fails; the next request tries again).
/// - An adapter is pinned from `acquire` to its `release` (a sequence holds it, queued or
///   running); eviction only drops unpinned adapters. When every resident adapter is pinned the
///   cache stays over its budget until some are released, rather than pull an adapter from under
///   a running sequence.
public final class AdapterCache: @unchecked Sendable {
    public typealias Loader = @Sendable (_ sha256: String) throws -> LoRAAdapter

    public struct Stats: Sendable, Equatable {
        public var hits = 0, misses = 0, loads = 0, evictions = 0
        public var residentBytes = 0
        /// Loaded adapters (pinned or not).
        public var resident = 0
    }

    final class Entry {
        var adapter: LoRAAdapter?
        var error: Error?
        var loading = true
        var bytes = 0
        var pins = 0
        var lastUse: UInt64 = 0
    }

    public let budgetBytes: Int
    private let loader: Loader
    private let logger: Logger
    private let cond = NSCondition()
    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0
    private var stats = Stats()

    private let hitsCounter = Counter(label: "lora_adapter_cache_hits_total")
    private let missesCounter = Counter(label: "lora_adapter_cache_misses_total")
    private let loadsCounter = Counter(label: "lora_adapter_cache_loads_total")
    private let evictionsCounter = Counter(label: "lora_adapter_cache_evictions_total")
    private let bytesGauge = Gauge(label: "lora_adapter_cache_bytes")
    private let loadTimer = Metrics.Timer(label: "lora_adapter_load_seconds")
    /// What `acquire` costs the request: a cached adapter (`cache="hit"`: a switch between resident
    /// adapters) or a load, or a wait for another request's load (`cache="miss"`).
    private let hitTimer = Metrics.Timer(label: "lora_adapter_acquire_seconds", dimensions: [("cache", "hit")])
    private let missTimer = Metrics.Timer(label: "lora_adapter_acquire_seconds", dimensions: [("cache", "miss")])

    public init(budgetBytes: Int, logger: Logger, loader: @escaping Loader) {
        self.budgetBytes = budgetBytes
        self.loader = loader
        self.logger = logger
    }

    /// Loads from the registry: the artifact's verified directory, read as a PEFT adapter for `base`,
    /// with its fp16 copies for decode rows (`LoRAAdapter.prepareHalfRows`, as `TrainingService.loadAdapter`).
    public static func registryLoader(_ registry: RegistryService, base: LlamaConfig) -> Loader {
        { sha in
            let adapter = try PEFTAdapter.load(from: try registry.adapterDirectory(sha256: sha).directory, base: base).adapter
            adapter.prepareHalfRows()
            return adapter
        }
    }

    /// The adapter with this sha256, loaded now if needed, pinned until `release(sha256:)`.
    public func acquire(sha256: String) throws -> LoRAAdapter {
        let start = DispatchTime.now().uptimeNanoseconds
        cond.lock()
        if let e = entries[sha256] {
            e.pins += 1
            let timer: Metrics.Timer
            if e.loading {
                // Another request is loading it: wait for that load instead of loading twice.
                stats.misses += 1; missesCounter.increment()
                while e.loading { cond.wait() }
                timer = missTimer
            } else {
                stats.hits += 1; hitsCounter.increment()
                timer = hitTimer
            }
            defer { timer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)) }
            clock += 1; e.lastUse = clock
            defer { cond.unlock() }
            if let a = e.adapter { return a }
            e.pins -= 1
            throw e.error ?? ServingError.internalError("adapter \(sha256.prefix(12)) failed to load")
        }
        let e = Entry()
        e.pins = 1
        entries[sha256] = e
        stats.misses += 1; missesCounter.increment()
        cond.unlock()

        let loadStart = DispatchTime.now().uptimeNanoseconds
        let result = Result { try loader(sha256) }
        let elapsed = DispatchTime.now().uptimeNanoseconds - loadStart
        defer { missTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)) }

        cond.lock()
        defer { cond.broadcast(); cond.unlock() }
        e.loading = false
        clock += 1; e.lastUse = clock
        switch result {
        case .success(let adapter):
            e.adapter = adapter
            e.bytes = adapter.residentBytes
            stats.loads += 1; loadsCounter.increment()
            loadTimer.recordNanoseconds(Int64(elapsed))
            stats.residentBytes += e.bytes
            stats.resident += 1
            logger.info("loaded adapter \(sha256.prefix(12)) (\(e.bytes) bytes) in \(Double(elapsed) / 1e9) s",
                        metadata: ["adapter": "\(sha256)"])
            evictLocked()
            return adapter
        case .failure(let error):
            e.error = error
            e.pins -= 1
            entries[sha256] = nil
            logger.error("loading adapter \(sha256.prefix(12)) failed: \(error)", metadata: ["adapter": "\(sha256)"])
            throw error
        }
    }

    /// Unpins an adapter `acquire` returned; it stays resident until the budget needs its bytes.
    public func release(sha256: String) {
        cond.lock()
        defer { cond.unlock() }
        guard let e = entries[sha256], e.pins > 0 else { return }
        e.pins -= 1
        evictLocked()
    }

    public var statistics: Stats {
        cond.lock(); defer { cond.unlock() }
        return stats
    }

    /// Whether the adapter is loaded now.
    public func isResident(sha256: String) -> Bool {
        cond.lock(); defer { cond.unlock() }
        return entries[sha256]?.adapter != nil
    }

    /// Pins held on an adapter (0 when not resident).
    public func pins(sha256: String) -> Int {
        cond.lock(); defer { cond.unlock() }
        return entries[sha256]?.pins ?? 0
    }

    /// Drops least recently used unpinned adapters until the resident bytes fit the budget.
    private func evictLocked() {
        while stats.residentBytes > budgetBytes {
            var victim: (String, Entry)?
            for (sha, e) in entries where !e.loading && e.pins == 0 && e.adapter != nil {
                if victim == nil || e.lastUse < victim!.1.lastUse { victim = (sha, e) }
            }
            guard let (sha, e) = victim else { break }
            entries[sha] = nil
            stats.residentBytes -= e.bytes
            stats.resident -= 1
            stats.evictions += 1; evictionsCounter.increment()
            logger.info("evicted adapter \(sha.prefix(12)) (\(e.bytes) bytes)", metadata: ["adapter": "\(sha)"])
        }
        bytesGauge.record(stats.residentBytes)
    }
}
