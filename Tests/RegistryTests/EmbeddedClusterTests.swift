import Foundation
import Registry
import XCTest

final class EmbeddedClusterTests: XCTestCase {
    func testAClusterStartsFromNothingAnswersAndStops() throws {
        let dir = URL(fileURLWithPath: "/tmp/lora-ect-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cluster = EmbeddedCluster(dataDirectory: dir)
        defer { _ = try? cluster.stop() }
        XCTAssertFalse(try cluster.status().initialized)
        let conninfo = try cluster.ensureRunning()
        let s = try cluster.status()
        XCTAssertTrue(s.running)
        XCTAssertNotNil(s.pid)
        let c = try Connection(conninfo)
        XCTAssertEqual(try c.execute("SELECT current_database() AS d")[0].string("d"), "lora")
        // No TCP: the server listens on its unix socket only.
        XCTAssertEqual(try c.execute("SHOW listen_addresses")[0].string("listen_addresses"), "")
        if geteuid() == 0 {
            // PostgreSQL refuses root: the server runs as the unprivileged service user.
            XCTAssertEqual(s.osUser, EmbeddedCluster.serviceUser)
            let owner = try FileManager.default.attributesOfItem(atPath: cluster.pgData.path)[.ownerAccountName] as? String
            XCTAssertEqual(owner, EmbeddedCluster.serviceUser)
            XCTAssertEqual(try c.execute("SELECT pg_backend_pid() AS p")[0].int("p") > 0, true)
        }
        XCTAssertEqual(try cluster.ensureRunning(), conninfo, "already running: no-op")
        XCTAssertTrue(try cluster.stop())
        XCTAssertFalse(try cluster.status().running)
        XCTAssertFalse(try cluster.stop(), "stopping a stopped cluster is a no-op")
        XCTAssertThrowsError(try Connection(conninfo))
        // Restart keeps the data.
        try Connection(try cluster.ensureRunning()).execute("CREATE TABLE kept (a int)")
        try cluster.stop()
        let again = try Connection(try cluster.ensureRunning())
        XCTAssertTrue(try again.execute("SELECT to_regclass('kept') IS NOT NULL AS e")[0].bool("e"))
    }

    func testAnUnreachableDataDirectoryIsRefusedWithAHintWhenRoot() throws {
        guard geteuid() == 0 else { return }
        let parent = URL(fileURLWithPath: "/tmp/lora-private-\(getpid())")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: parent) }
        let cluster = EmbeddedCluster(dataDirectory: parent.appendingPathComponent("data"))
        XCTAssertThrowsError(try cluster.ensureRunning()) { e in
            guard case ClusterError.dataDirUnreachable(_, let blocked) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(blocked, parent.path)
        }
    }
}
