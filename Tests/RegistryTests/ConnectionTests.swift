import Foundation
import Registry
import ServiceTestSupport
import XCTest

final class ConnectionTests: XCTestCase {
    var db: TestDatabase!
    override func setUpWithError() throws { db = try TestDatabase() }
    override func tearDown() { db?.drop() }

    func testBinaryParametersRoundTripEveryByteValue() throws {
        let c = try db.connect()
        try c.execute("CREATE TABLE b (id int, bytes bytea)")
        let all = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) } + [0, 0, 92, 120]
        try c.execute("INSERT INTO b VALUES ($1, $2)", [1, .bytes(all)])
        try c.execute("INSERT INTO b VALUES ($1, $2)", [2, .bytes([])])
        XCTAssertEqual(try c.execute("SELECT bytes FROM b WHERE id = $1", [1])[0].bytes("bytes"), all)
        XCTAssertEqual(try c.execute("SELECT bytes FROM b WHERE id = $1", [2])[0].bytes("bytes"), [])
        XCTAssertEqual(try c.execute("SELECT length(bytes) AS n FROM b WHERE id = 1")[0].int("n"), all.count)
    }

    func testTextParametersAreNeverInterpretedAsSQL() throws {
        let c = try db.connect()
        try c.execute("CREATE TABLE t (name text)")
        let evil = "x'); DROP TABLE t; --"
        try c.execute("INSERT INTO t VALUES ($1)", [.text(evil)])
        XCTAssertEqual(try c.execute("SELECT name FROM t")[0].string("name"), evil)
        XCTAssertTrue(try c.execute("SELECT name FROM t WHERE name = $1", [nil]).isEmpty)
    }

    func testErrorsCarrySQLStateMessageAndConstraint() throws {
        let c = try db.connect()
        try c.execute("CREATE TABLE u (k int CONSTRAINT u_k_key UNIQUE)")
        try c.execute("INSERT INTO u VALUES (1)")
        XCTAssertThrowsError(try c.execute("INSERT INTO u VALUES ($1)", [1])) { e in
            let pe = e as? PostgresError
            XCTAssertEqual(pe?.sqlState, "23505")
            XCTAssertEqual(pe?.constraint, "u_k_key")
            XCTAssertTrue(pe?.isUniqueViolation ?? false)
            XCTAssertTrue(pe?.message.contains("duplicate key") ?? false, "\(e)")
        }
        XCTAssertThrowsError(try c.execute("SELEC 1")) { XCTAssertEqual(($0 as? PostgresError)?.sqlState, "42601") }
        // The connection stays usable after errors.
        XCTAssertEqual(try c.execute("SELECT 41 + $1::int AS n", [1])[0].int("n"), 42)
    }

    func testTransactionRollsBackWhenTheBodyThrowsAndSavepointsNest() throws {
        let c = try db.connect()
        try c.execute("CREATE TABLE t (v int)")
        struct Boom: Error {}
        XCTAssertThrowsError(try c.withTransaction { c in
            try c.execute("INSERT INTO t VALUES (1)")
            throw Boom()
        })
        try c.withTransaction { c in
            try c.execute("INSERT INTO t VALUES (2)")
            _ = try? c.withTransaction { c -> Void in
                try c.execute("INSERT INTO t VALUES (3)")
                throw Boom()
            }
            try c.withTransaction { c in try c.execute("INSERT INTO t VALUES (4)") }
        }
        XCTAssertEqual(try c.execute("SELECT v FROM t ORDER BY v").rows.map { try $0.int("v") }, [2, 4])
        XCTAssertEqual(c.transactionDepth, 0)
    }

    func testListenWaitsForANotificationAndTimesOut() throws {
        let listener = try db.connect(), sender = try db.connect()
        try listener.listen("jobs")
        let t0 = Date()
        XCTAssertNil(try listener.waitForNotification(timeout: 0.2))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t0), 0.19)
        // The sender runs on its own thread; it is joined before the sender is used again, so the
        // connection is never used by two threads at once (even when a loaded machine delays it).
        let sent = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.2)
            try? sender.notify("jobs", payload: "42")
            sent.signal()
        }
        let n = try listener.waitForNotification(timeout: 30)
        sent.wait()
        XCTAssertEqual(n?.channel, "jobs")
        XCTAssertEqual(n?.payload, "42")
        XCTAssertEqual(n?.senderPID, sender.backendPID)
        // Delivered on commit only.
        try sender.withTransaction { c in
            try c.notify("jobs", payload: "in-tx")
            XCTAssertNil(try listener.waitForNotification(timeout: 0.1))
        }
        XCTAssertEqual(try listener.waitForNotification(timeout: 5)?.payload, "in-tx")
    }

    func testPoolNeverOpensMoreThanItsLimit() throws {
        let pool = ConnectionPool(conninfo: db.conninfo, maxConnections: 2)
        let lock = NSLock()
        var pids = Set<Int32>()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            try? pool.withConnection { c in
                lock.lock(); pids.insert(c.backendPID); lock.unlock()
                try c.execute("SELECT pg_sleep(0.05)")
            }
        }
        XCTAssertLessThanOrEqual(pids.count, 2)
        XCTAssertGreaterThanOrEqual(pids.count, 1)
        pool.close()
    }
}
