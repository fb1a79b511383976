import Foundation
import Registry
import Service
import ServiceTestSupport
import XCTest

final class ArchiveTagTests: RegistryTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try addTinyBase()
        for seed in 1...3 { try importVersion("t", seed: seed) }
    }

    func testArchiveIsRefusedWhileAnAliasPointsAtTheVersion() throws {
        try service.promote(task: "t", version: 2, actor: "a")
        assertThrows(RegistryError.versionHasAliases(task: "t", version: 2, aliases: ["production"])) {
            try self.service.archive("t@2", actor: "a")
        }
        try service.promote(task: "t", version: 1, actor: "a")
        XCTAssertTrue(try service.archive("t@2", actor: "a").archived)
        XCTAssertEqual(try service.versions(task: "t").map(\.version), [1, 3])
        XCTAssertEqual(try service.versions(task: "t", includeArchived: true).map(\.version), [1, 2, 3])
        assertThrows(RegistryError.versionArchived(task: "t", version: 2)) { try self.service.archive("t@2", actor: "a") }
    }

    func testArchivedVersionsCannotBePromotedOrRolledBackTo() throws {
        try service.promote(task: "t", version: 1, actor: "a")
        try service.promote(task: "t", version: 2, actor: "a")
        try service.archive("t@1", actor: "a")
        assertThrows(RegistryError.versionArchived(task: "t", version: 1)) { try self.service.promote(task: "t", version: 1, actor: "a") }
        assertThrows(RegistryError.rollbackTargetArchived(task: "t", alias: "production", version: 1)) {
            try self.service.rollback(task: "t", actor: "a")
        }
    }

    func testArchivingTheNewestVersionMovesLatestBack() throws {
        try service.archive("t@3", actor: "a")
        XCTAssertEqual(try service.task(named: "t").aliases["latest"], 2)
        XCTAssertEqual(try service.version("t").version, 2)
        try service.archive("t@2", actor: "a")
        try service.archive("t@1", actor: "a")
        XCTAssertNil(try service.task(named: "t").aliases["latest"])
        XCTAssertThrowsError(try service.version("t"))
        // A new import still gets the next number: archived numbers are never reused.
        XCTAssertEqual(try importVersion("t", seed: 8).version, 4)
    }

    func testTagsCanBeSetAndCleared() throws {
        XCTAssertEqual(try service.setTag("t@2", key: "dataset", value: "v1").tags, ["dataset": "v1"])
        XCTAssertEqual(try service.setTag("t@2", key: "owner", value: "ml").tags, ["dataset": "v1", "owner": "ml"])
        XCTAssertEqual(try service.setTag("t@2", key: "dataset", value: "v2").tags["dataset"], "v2")
        XCTAssertEqual(try service.clearTag("t@2", key: "dataset").tags, ["owner": "ml"])
        XCTAssertEqual(try service.version("t@1").tags, [:], "other versions untouched")
        assertThrows(RegistryError.notFound(kind: "version", name: "t@9")) { try self.service.setTag("t@9", key: "k", value: "v") }
    }

    func testVersionsAreImmutableInTheSchema() throws {
        let c = try db.connect()
        XCTAssertThrowsError(try c.execute("UPDATE adapter_versions SET metrics = '{\"loss\": 0}' WHERE version = 1")) {
            XCTAssertEqual(($0 as? PostgresError)?.sqlState, "23000")
        }
        XCTAssertThrowsError(try c.execute("DELETE FROM adapter_versions WHERE version = 1")) {
            XCTAssertEqual(($0 as? PostgresError)?.sqlState, "23000")
        }
        // Archiving through SQL while production points at it is refused by the schema too.
        try service.promote(task: "t", version: 1, actor: "a")
        XCTAssertThrowsError(try c.execute("UPDATE adapter_versions SET archived_at = now() WHERE version = 1")) {
            XCTAssertEqual(($0 as? PostgresError)?.sqlState, "23000")
        }
    }
}
