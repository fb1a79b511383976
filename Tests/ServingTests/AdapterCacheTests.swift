import Foundation
import Model
import Service
import Training
import XCTest

/// The adapter cache alone, with a loader the test controls (no registry, no model).
final class AdapterCacheTests: XCTestCase {
    /// A tiny base shape: every adapter for it has the same byte size.
    static let tiny = LlamaConfig(vocabSize: 32, hiddenSize: 8, intermediateSize: 16, numLayers: 2, numHeads: 2,
                                  numKVHeads: 1, headDim: 4, rmsNormEps: 1e-5, ropeTheta: 10000,
                                  maxPositionEmbeddings: 64, tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2])

    static func tinyAdapter() -> LoRAAdapter {
        LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, dropout: 0, targets: [.q, .v]), base: tiny)
    }

    static var adapterBytes: Int { tinyAdapter().parameterCount * MemoryLayout<Float>.size }

    final class CountingLoader: @unchecked Sendable {
        let lock = NSLock()
        var calls: [String] = []
        var failNext = false
        let gate: DispatchSemaphore?
        init(gate: DispatchSemaphore? = nil) { self.gate = gate }
        func load(_ sha: String) throws -> LoRAAdapter {
            lock.lock()
            calls.append(sha)
            let fail = failNext
            failNext = false
            lock.unlock()
            gate?.wait()
            if fail { throw ServingError.internalError("disk on fire") }
            return AdapterCacheTests.tinyAdapter()
        }
        var count: Int { lock.lock(); defer { lock.unlock() }; return calls.count }
    }

    func testConcurrentFirstRequestsLoadTheAdapterOnce() throws {
        let gate = DispatchSemaphore(value: 0)
        let loader = CountingLoader(gate: gate)
        let cache = AdapterCache(budgetBytes: 1 << 20, logger: ServingFixtures.quietLogger) { try loader.load($0) }
        let n = 8
        let results = ResultBox(n)
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            Thread.detachNewThread {
                results.set(i, Result { try cache.acquire(sha256: "aaaa") })
                group.leave()
            }
        }
        // Every request has asked (and all but the first wait for the one load) before the load ends.
        XCTAssertTrue(waitUntil(30) { cache.statistics.misses == n }, "requests did not all arrive: \(cache.statistics)")
        gate.signal()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        let adapters = try results.all.map { try $0!.get() }
        XCTAssertEqual(loader.count, 1, "one load for \(n) concurrent first requests")
        XCTAssertTrue(adapters.allSatisfy { $0 === adapters[0] })
        XCTAssertEqual(cache.statistics.loads, 1)
        XCTAssertEqual(cache.pins(sha256: "aaaa"), n)
        for _ in 0..<n { cache.release(sha256: "aaaa") }
        XCTAssertEqual(cache.pins(sha256: "aaaa"), 0)
        // Now resident: the next request is a hit.
        _ = try cache.acquire(sha256: "aaaa")
        XCTAssertEqual(cache.statistics.hits, 1)
        XCTAssertEqual(loader.count, 1)
    }

    func testLeastRecentlyUsedEvictionNeverTouchesAPinnedAdapter() throws {
        let loader = CountingLoader()
        let bytes = Self.adapterBytes
        // Room for two adapters.
        let cache = AdapterCache(budgetBytes: 2 * bytes, logger: ServingFixtures.quietLogger) { try loader.load($0) }
        _ = try cache.acquire(sha256: "a")           // pinned for the whole test, and the oldest
        _ = try cache.acquire(sha256: "b"); cache.release(sha256: "b")
        _ = try cache.acquire(sha256: "c"); cache.release(sha256: "c")
        // Three resident, budget two: the least recently used unpinned one (b) goes, not a.
        XCTAssertTrue(cache.isResident(sha256: "a"))
        XCTAssertFalse(cache.isResident(sha256: "b"))
        XCTAssertTrue(cache.isResident(sha256: "c"))
        XCTAssertEqual(cache.statistics.evictions, 1)
        XCTAssertEqual(cache.statistics.residentBytes, 2 * bytes)

        // Everything pinned: the cache goes over budget rather than drop an adapter in use.
        _ = try cache.acquire(sha256: "c")
        _ = try cache.acquire(sha256: "d")
        XCTAssertEqual(cache.statistics.resident, 3)
        XCTAssertEqual(cache.statistics.residentBytes, 3 * bytes)
        XCTAssertEqual(cache.statistics.evictions, 1)
        // Over budget: c goes as soon as it is released.
        cache.release(sha256: "c")
        XCTAssertFalse(cache.isResident(sha256: "c"))
        XCTAssertTrue(cache.isResident(sha256: "a"))
        XCTAssertTrue(cache.isResident(sha256: "d"))
        XCTAssertEqual(cache.statistics.evictions, 2)
        // b comes back with a second load.
        _ = try cache.acquire(sha256: "b")
        XCTAssertEqual(loader.calls.filter { $0 == "b" }.count, 2)
    }

    func testAFailedLoadIsNotRememberedAndTheNextRequestRetries() throws {
        let loader = CountingLoader()
        loader.failNext = true
        let cache = AdapterCache(budgetBytes: 1 << 20, logger: ServingFixtures.quietLogger) { try loader.load($0) }
        XCTAssertThrowsError(try cache.acquire(sha256: "x")) {
            XCTAssertEqual($0 as? ServingError, .internalError("disk on fire"))
        }
        XCTAssertFalse(cache.isResident(sha256: "x"))
        XCTAssertNoThrow(try cache.acquire(sha256: "x"))
        XCTAssertEqual(loader.count, 2)
        XCTAssertEqual(cache.pins(sha256: "x"), 1)
    }
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Result<LoRAAdapter, Error>?]
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ r: Result<LoRAAdapter, Error>) { lock.lock(); values[i] = r; lock.unlock() }
    var all: [Result<LoRAAdapter, Error>?] { lock.lock(); defer { lock.unlock() }; return values }
}
