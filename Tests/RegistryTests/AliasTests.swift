import Foundation
import Registry
import Service
import ServiceTestSupport
import XCTest

final class AliasTests: RegistryTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try addTinyBase()
        for seed in 1...4 { try importVersion("t", seed: seed) }
    }

    func target(_ alias: String = "production") throws -> Int? { try service.task(named: "t").aliases[alias] }

    func testRollbackWalksBackThroughPromotionsThenFailsClearly() throws {
        try service.promote(task: "t", version: 1, actor: "a")
        try service.promote(task: "t", version: 2, actor: "a")
        try service.promote(task: "t", version: 3, actor: "a", reason: "better eval")
        XCTAssertEqual(try target(), 3)
        let r1 = try service.rollback(task: "t", actor: "b", reason: "regression")
        XCTAssertEqual([r1.fromVersion, r1.toVersion], [3, 2])
        XCTAssertEqual(try target(), 2)
        XCTAssertEqual(try service.rollback(task: "t", actor: "b").toVersion, 1, "a second rollback goes one further")
        assertThrows(RegistryError.nothingToRollBack(task: "t", alias: "production")) {
            try self.service.rollback(task: "t", actor: "b")
        }
        XCTAssertEqual(try target(), 1, "a failed rollback moves nothing")
    }

    func testRollbackAfterANewPromotionReturnsToTheVersionItReplaced() throws {
        try service.promote(task: "t", version: 1, actor: "a")
        try service.promote(task: "t", version: 2, actor: "a")
        try service.rollback(task: "t", actor: "a")          // -> 1
        try service.promote(task: "t", version: 4, actor: "a") // 1 -> 4
        XCTAssertEqual(try service.rollback(task: "t", actor: "a").toVersion, 1)
        assertThrows(RegistryError.nothingToRollBack(task: "t", alias: "production")) { try self.service.rollback(task: "t", actor: "a") }
    }

    func testRollbackWithNoPromotionAtAllIsAClearError() {
        assertThrows(RegistryError.nothingToRollBack(task: "t", alias: "production")) { try self.service.rollback(task: "t", actor: "a") }
        assertThrows(RegistryError.nothingToRollBack(task: "t", alias: "staging")) {
            try self.service.rollback(task: "t", alias: "staging", actor: "a")
        }
    }

    func testHistoryListsEveryMoveInOrderWithActorAndReason() throws {
        try service.promote(task: "t", version: 2, actor: "alice", reason: "first")
        try service.promote(task: "t", version: 3, alias: "staging", actor: "bob")
        try service.promote(task: "t", version: 4, actor: "alice", reason: "second")
        try service.rollback(task: "t", actor: "carol", reason: "oops")
        let prod = try service.history(task: "t", alias: "production")
        XCTAssertEqual(prod.map(\.action), [.promote, .promote, .rollback])
        XCTAssertEqual(prod.map(\.fromVersion), [nil, 2, 4])
        XCTAssertEqual(prod.map(\.toVersion), [2, 4, 2])
        XCTAssertEqual(prod.map(\.actor), ["alice", "alice", "carol"])
        XCTAssertEqual(prod.map(\.reason), ["first", "second", "oops"])
        let all = try service.history(task: "t")
        XCTAssertEqual(all.filter { $0.alias == "latest" }.map(\.toVersion), [1, 2, 3, 4])
        XCTAssertTrue(all.filter { $0.alias == "latest" }.allSatisfy { $0.action == .auto })
        XCTAssertEqual(all.map(\.id), all.map(\.id).sorted())
        XCTAssertEqual(all.count, 8)
    }

    func testLatestIsAutomaticAndCannotBeMovedByHand() throws {
        assertThrows(RegistryError.reservedAlias("latest")) { try self.service.promote(task: "t", version: 1, alias: "latest", actor: "a") }
        assertThrows(RegistryError.reservedAlias("latest")) { try self.service.rollback(task: "t", alias: "latest", actor: "a") }
        XCTAssertEqual(try target("latest"), 4)
        try importVersion("t", seed: 9)
        XCTAssertEqual(try target("latest"), 5)
        // The schema refuses a hand-made move of latest too.
        let c = try db.connect()
        XCTAssertThrowsError(try c.execute("""
            INSERT INTO alias_history (task_id, alias, from_version, to_version, action, actor)
            SELECT id, 'latest', 5, 1, 'promote', 'x' FROM tasks WHERE name = 't'
            """)) { XCTAssertEqual(($0 as? PostgresError)?.constraint, "latest_is_automatic") }
    }

    func testAliasNamesMustNotBeAllDigits() throws {
        XCTAssertThrowsError(try service.promote(task: "t", version: 1, alias: "123", actor: "a")) { e in
            guard case RegistryError.invalidName(kind: "alias", name: "123", _) = e else { return XCTFail("\(e)") }
        }
        let c = try db.connect()
        XCTAssertThrowsError(try c.execute("INSERT INTO aliases (task_id, name, version) SELECT id, '42', 1 FROM tasks")) {
            XCTAssertEqual(($0 as? PostgresError)?.constraint, "alias_name_format")
        }
    }

    func testPromotingAMissingVersionOrTaskFails() {
        assertThrows(RegistryError.notFound(kind: "version", name: "t@99")) { try self.service.promote(task: "t", version: 99, actor: "a") }
        assertThrows(RegistryError.notFound(kind: "task", name: "nope")) { try self.service.promote(task: "nope", version: 1, actor: "a") }
    }

    func testPromotingTheCurrentVersionAgainRecordsNothing() throws {
        XCTAssertNotNil(try service.promote(task: "t", version: 2, actor: "a"))
        XCTAssertNil(try service.promote(task: "t", version: 2, actor: "a"))
        XCTAssertEqual(try service.history(task: "t", alias: "production").count, 1)
    }

    func testTaskAloneFollowsProductionElseLatest() throws {
        XCTAssertEqual(try service.version("t").version, 4)
        try service.promote(task: "t", version: 2, actor: "a")
        XCTAssertEqual(try service.version("t").version, 2)
        XCTAssertEqual(try service.version("t@latest").version, 4)
        XCTAssertEqual(try service.version("t@3").version, 3)
        assertThrows(RegistryError.notFound(kind: "alias", name: "t@staging")) { _ = try self.service.version("t@staging") }
    }

    func testAliasHistoryIsAppendOnly() throws {
        try service.promote(task: "t", version: 2, actor: "a")
        let c = try db.connect()
        XCTAssertThrowsError(try c.execute("UPDATE alias_history SET actor = 'mallory'")) {
            XCTAssertEqual(($0 as? PostgresError)?.sqlState, "23000")
        }
        XCTAssertThrowsError(try c.execute("DELETE FROM alias_history")) { XCTAssertEqual(($0 as? PostgresError)?.sqlState, "23000") }
    }
}
