import Foundation
import Registry
import Service
import ServiceTestSupport
import XCTest

/// Promote and rollback reach the engine's next resolution within 1 s: by NOTIFY (with a re-check
/// period far longer than that), and by the re-check alone when no notification arrives.
final class HotSwapTests: EngineTestCase {
    func resolvedVersion(_ e: ServingEngine, _ model: String) throws -> Int? {
        try e.resolver.resolve(model).version
    }

    func testPromoteThenRollbackReachTheNextRequestWithinASecondByNotify() throws {
        try importDefault("gamma", seed: 21)
        try importDefault("gamma", seed: 22)
        try service.promote(task: "gamma", version: 1, actor: "tester")
        // Only a notification can make a change visible within 1 s: resolutions are trusted for 60 s.
        let e = try makeEngine { $0.aliasRecheckSeconds = 60 }
        XCTAssertTrue(e.waitUntilListening(timeout: 30))
        XCTAssertEqual(try resolvedVersion(e, "gamma"), 1)
        let queriesBefore = e.resolver.queries
        XCTAssertEqual(try resolvedVersion(e, "gamma"), 1)
        XCTAssertEqual(e.resolver.queries, queriesBefore, "a remembered resolution needs no query")

        // A sequence admitted now keeps version 1 whatever happens next.
        let held = try e.submit(ServingRequest(model: "gamma", input: .text("Hello"), maxTokens: 2, requestId: "held"))

        try service.promote(task: "gamma", version: 2, actor: "tester")
        var t0 = Date()
        XCTAssertTrue(try waitUntil(1.0) { try resolvedVersion(e, "gamma") == 2 }, "promotion not seen within 1 s")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0)
        let next = try collect(try e.submit(ServingRequest(model: "gamma", input: .text("Hello"), maxTokens: 2, requestId: "next")))
        guard case let .admitted(served, _)? = next.first else { return XCTFail("no admitted event") }
        XCTAssertEqual(served.id, "gamma@2")

        try service.rollback(task: "gamma", actor: "tester")
        t0 = Date()
        XCTAssertTrue(try waitUntil(1.0) { try resolvedVersion(e, "gamma") == 1 }, "rollback not seen within 1 s")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0)

        let heldEvents = try collect(held)
        guard case let .admitted(heldServed, _)? = heldEvents.first else { return XCTFail("no admitted event") }
        XCTAssertEqual(heldServed.id, "gamma@1")
        XCTAssertEqual(Self.finish(heldEvents), .length)
    }

    func testTheRecheckPeriodCatchesAMoveWithoutANotification() throws {
        try importDefault("gamma", seed: 21)
        try importDefault("gamma", seed: 22)
        try service.promote(task: "gamma", version: 1, actor: "tester")
        // Not started: no listener, so only the 0.5 s re-check can see the move.
        let e = try makeEngine({ $0.aliasRecheckSeconds = 0.5 }, start: false)
        XCTAssertEqual(try resolvedVersion(e, "gamma"), 1)
        try service.promote(task: "gamma", version: 2, actor: "tester")
        XCTAssertTrue(try waitUntil(1.0) { try resolvedVersion(e, "gamma") == 2 }, "promotion not seen within 1 s")
        try service.archive("gamma@1", actor: "tester")
        XCTAssertTrue(try waitUntil(1.0) {
            do { _ = try e.resolver.resolve("gamma@1"); return false } catch ServingError.modelNotFound { return true }
        }, "archive not seen within 1 s")
    }
}
