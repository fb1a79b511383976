import Foundation
import Registry
import TestSupport
import ServiceTestSupport
import XCTest

final class MigrationTests: XCTestCase {
    var db: TestDatabase!
    override func setUpWithError() throws { db = try TestDatabase() }
    override func tearDown() { db?.drop() }

    func testMigrationsApplyToAnEmptyDatabaseAndAgainAreANoOp() throws {
        let c = try db.connect()
        let runner = MigrationRunner(migrations: try Migration.embedded())
        XCTAssertEqual(try MigrationRunner.appliedVersions(on: c), [])
        let first = try runner.apply(on: c)
        XCTAssertEqual(first, Array(1...runner.migrations.count))
        for table in ["base_models", "tasks", "adapter_versions", "aliases", "alias_history", "artifacts", "artifact_chunks"] {
            XCTAssertTrue(try c.execute("SELECT to_regclass($1) IS NOT NULL AS e", [.text(table)])[0].bool("e"), table)
        }
        XCTAssertEqual(try runner.apply(on: c), [], "second run applies nothing")
        XCTAssertEqual(try c.execute("SELECT count(*) AS n FROM schema_migrations")[0].int("n"), runner.migrations.count)
    }

    func testRunnerRefusesAGapInNumbers() {
        XCTAssertThrowsError(try Migration.validated([("0001_a.sql", "SELECT 1"), ("0003_c.sql", "SELECT 1")])) {
            XCTAssertEqual($0 as? MigrationError, .gap(missing: 2, after: 1))
        }
        XCTAssertThrowsError(try Migration.validated([("0002_b.sql", "SELECT 1")])) {
            XCTAssertEqual($0 as? MigrationError, .gap(missing: 1, after: 0))
        }
    }

    func testRunnerRefusesDuplicateNumbers() {
        XCTAssertThrowsError(try Migration.validated([("0001_a.sql", "SELECT 1"), ("0001_b.sql", "SELECT 2")])) {
            XCTAssertEqual($0 as? MigrationError, .duplicate(version: 1, files: ["0001_a.sql", "0001_b.sql"]))
        }
    }

    func testRunnerRefusesBadFileNames() {
        for bad in ["1_a.sql", "0001-a.sql", "0001_A.sql", "0000_zero.sql", "0001_.sql"] {
            XCTAssertThrowsError(try Migration.validated([(bad, "SELECT 1")]), bad) {
                XCTAssertEqual($0 as? MigrationError, .badFileName(bad))
            }
        }
    }

    func testAppliedMigrationThatWasEditedIsRefused() throws {
        let c = try db.connect()
        try MigrationRunner(migrations: [Migration(version: 1, name: "a", sql: "CREATE TABLE x (a int);")]).apply(on: c)
        let edited = MigrationRunner(migrations: [Migration(version: 1, name: "a", sql: "CREATE TABLE x (a bigint);")])
        XCTAssertThrowsError(try edited.apply(on: c)) { XCTAssertEqual($0 as? MigrationError, .edited(version: 1, name: "a")) }
    }

    func testDatabaseWithAMigrationThisBinaryDoesNotKnowIsRefused() throws {
        let c = try db.connect()
        let m1 = Migration(version: 1, name: "a", sql: "CREATE TABLE x (a int);")
        let m2 = Migration(version: 2, name: "b", sql: "CREATE TABLE y (a int);")
        try MigrationRunner(migrations: [m1, m2]).apply(on: c)
        XCTAssertThrowsError(try MigrationRunner(migrations: [m1]).apply(on: c)) {
            XCTAssertEqual($0 as? MigrationError, .unknownApplied(version: 2, name: "b"))
        }
    }

    func testAFailingMigrationLeavesNothingBehind() throws {
        let c = try db.connect()
        let bad = Migration(version: 1, name: "bad", sql: "CREATE TABLE x (a int); SELECT no_such_function();")
        XCTAssertThrowsError(try MigrationRunner(migrations: [bad]).apply(on: c))
        XCTAssertFalse(try c.execute("SELECT to_regclass('x') IS NOT NULL AS e")[0].bool("e"))
        XCTAssertEqual(try MigrationRunner.appliedVersions(on: c), [])
    }

    func testConcurrentRunnersApplyEachMigrationOnce() throws {
        let migrations = try Migration.embedded()
        let group = DispatchGroup()
        let lock = NSLock()
        var applied: [[Int]] = []
        var errors: [Error] = []
        for _ in 0..<4 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                do {
                    let c = try self.db.connect()
                    let done = try MigrationRunner(migrations: migrations).apply(on: c)
                    lock.lock(); applied.append(done); lock.unlock()
                } catch {
                    lock.lock(); errors.append(error); lock.unlock()
                }
            }
        }
        group.wait()
        XCTAssertTrue(errors.isEmpty, "\(errors)")
        XCTAssertEqual(applied.flatMap { $0 }.sorted(), Array(1...migrations.count), "each applied by exactly one runner")
    }

    /// The binary's embedded copy must be byte-identical to migrations/*.sql
    /// (scripts/embed-migrations.sh rewrites it).
    func testEmbeddedMigrationsAreByteIdenticalToTheRepositoryFiles() throws {
        let onDisk = try Migration.load(directory: TestPaths.repoRoot.appendingPathComponent("migrations"))
        let embedded = try Migration.embedded()
        XCTAssertEqual(onDisk.map(\.fileName), embedded.map(\.fileName))
        for (a, b) in zip(onDisk, embedded) {
            XCTAssertEqual(Array(a.sql.utf8), Array(b.sql.utf8), "\(a.fileName) differs: run scripts/embed-migrations.sh")
        }
    }
}
