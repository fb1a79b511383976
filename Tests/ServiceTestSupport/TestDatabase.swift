import Foundation
import Registry
import Service
import TestSupport
import XCTest

/// One embedded cluster per test process, started through the project's own EmbeddedCluster
/// code in a temporary data directory (no PostgreSQL started by hand), stopped and removed at
/// exit. Every test gets its own fresh database.
public enum TestCluster {
    public static let shared: Result<EmbeddedCluster, Error> = {
        let dir = URL(fileURLWithPath: "/tmp/lora-rt-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        // A throwaway cluster: no fsync, so creating a database per test costs milliseconds.
        let cluster = EmbeddedCluster(dataDirectory: dir, durability: .fastUnsafe)
        do {
            try cluster.ensureRunning()
        } catch {
            return .failure(error)
        }
        clusterToStopAtExit = cluster
        atexit {
            if let c = clusterToStopAtExit {
                _ = try? c.stop()
                try? FileManager.default.removeItem(at: c.dataDirectory)
            }
        }
        return .success(cluster)
    }()
}

private var clusterToStopAtExit: EmbeddedCluster?

/// A database of its own for one test; dropped by `drop()` (called from tearDown).
public final class TestDatabase {
    public let name: String
    public let conninfo: String
    public let cluster: EmbeddedCluster

    public init() throws {
        cluster = try TestCluster.shared.get()
        name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        let admin = try Connection(cluster.conninfo)
        try admin.execute("CREATE DATABASE \(try admin.quoteIdentifier(name))")
        conninfo = cluster.conninfo(database: name)
    }

    public func connect() throws -> Connection { try Connection(conninfo) }

    public func drop() {
        guard let admin = try? Connection(cluster.conninfo) else { return }
        _ = try? admin.execute("DROP DATABASE IF EXISTS \(try admin.quoteIdentifier(name)) WITH (FORCE)")
    }
}

/// A base class giving each test a database, a data directory and a registry service on them.
open class RegistryTestCase: XCTestCase {
    public var db: TestDatabase!
    public var dataDir: URL!
    public var service: RegistryService!

    override open func setUpWithError() throws {
        db = try TestDatabase()
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-rt-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        service = try RegistryService.open(RegistryConfiguration(databaseURL: db.conninfo, dataDirectory: dataDir),
                                           maxConnections: 8)
    }

    override open func tearDown() {
        service?.pool.close()
        service = nil
        db?.drop()
        if let dataDir { try? FileManager.default.removeItem(at: dataDir) }
    }

    public var scratch: URL { dataDir.appendingPathComponent("scratch") }

    /// Registers the tiny base model `tiny` and returns its config.
    @discardableResult
    public func addTinyBase(name: String = "tiny") throws -> BaseModelRecord {
        let dir = scratch.appendingPathComponent("base-\(name)")
        try RegistryFixtures.writeTinyBase(to: dir)
        return try service.addBaseModel(name: name, source: dir, actor: "tester")
    }

    /// Writes a valid adapter for the tiny base; `seed` varies its weights (and so its sha256).
    public func adapterDir(seed: Int, rank: Int = 2, modules: [String] = ["q_proj", "v_proj"]) throws -> URL {
        let dir = scratch.appendingPathComponent("adapter-\(seed)-\(UUID().uuidString.prefix(8))")
        try RegistryFixtures.writeAdapter(to: dir, seed: seed, rank: rank, modules: modules)
        return dir
    }

    @discardableResult
    public func importVersion(_ task: String = "summarize", seed: Int, metrics: [String: Double] = [:]) throws -> VersionRecord {
        try service.importAdapter(task: task, directory: try adapterDir(seed: seed), metrics: metrics, actor: "tester")
    }

    public func assertThrows<E: Error & Equatable>(_ expected: E, file: StaticString = #filePath, line: UInt = #line,
                                            _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? E, expected, "got \(error)", file: file, line: line)
        }
    }
}
