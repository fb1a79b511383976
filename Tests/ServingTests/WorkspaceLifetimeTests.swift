import Foundation
import Model
import TestSupport
import Training
import XCTest

/// The workspace reuses its step's row arrays (`forwardBatch` allocates nothing per decode step), but
/// holds no sequence's KV cache or adapter after the call: a sequence that leaves frees its cache then.
final class WorkspaceLifetimeTests: XCTestCase {
    /// Two steps (a prompt, a decode row) of a sequence through `ws`; returns weak references to its
    /// cache and adapter, whose only strong references were this function's.
    func runSequence(_ m: LlamaModel, _ ws: Workspace) throws -> (cache: () -> KVCache?, adapter: () -> (any LinearDelta)?) {
        let cache = KVCache(config: m.config, capacity: 8)
        let adapter = ServingFixtures.adapter(seed: 3, config: m.config)
        var hidden = [Float](repeating: 0, count: 4 * m.config.hiddenSize)
        try hidden.withUnsafeMutableBufferPointer { h in
            try m.forwardBatch([BatchSegment(tokens: [1, 2, 3], cache: cache, adapters: AdapterSet([adapter]))],
                               workspace: ws, hidden: h.baseAddress!)
            try m.forwardBatch([BatchSegment(tokens: [4], cache: cache, adapters: AdapterSet([adapter]))],
                               workspace: ws, hidden: h.baseAddress!)
        }
        XCTAssertEqual(cache.count, 4)
        return ({ [weak cache] in cache }, { [weak adapter] in adapter })
    }

    func testForwardBatchKeepsNoCacheOrAdapterAlive() throws {
        let m = try ServingFixtures.model().model
        let ws = Workspace()
        let refs = try runSequence(m, ws)
        XCTAssertNil(refs.cache(), "the workspace still holds the sequence's KV cache")
        XCTAssertNil(refs.adapter(), "the workspace still holds the sequence's adapter")
        withExtendedLifetime(ws) {}
    }
}
