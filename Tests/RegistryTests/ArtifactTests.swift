import Foundation
import Registry
import Service
import ServiceTestSupport
import XCTest

final class ArtifactTests: RegistryTestCase {
    func files(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for n in try FileManager.default.contentsOfDirectory(atPath: dir.path) where !n.hasPrefix(".") {
            out[n] = try Data(contentsOf: dir.appendingPathComponent(n))
        }
        return out
    }

    func testResolveReturnsTheImportedFilesByteForByte() throws {
        try addTinyBase()
        let src = try adapterDir(seed: 1)
        let v = try service.importAdapter(task: "t", directory: src, actor: "a")
        let r = try service.resolve("t@1")
        XCTAssertEqual(try files(r.directory), try files(src))
        XCTAssertEqual(r.version.sha256, v.sha256)
        let out = scratch.appendingPathComponent("exported")
        try service.export("t", to: out)
        XCTAssertEqual(try files(out), try files(src))
        XCTAssertThrowsError(try service.export("t", to: out), "refuses to overwrite")
        XCTAssertNoThrow(try service.export("t", to: out, overwrite: true))
    }

    func testACorruptCacheFileIsDetectedDeletedAndFetchedAgain() throws {
        try addTinyBase()
        let src = try adapterDir(seed: 2)
        let v = try service.importAdapter(task: "t", directory: src, actor: "a")
        let cached = service.store.artifacts.cachePath(v.sha256)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cached.path), "import fills the cache")
        var bytes = try Data(contentsOf: cached)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: cached)
        let r = try service.resolve("t@1")
        XCTAssertTrue(r.fetched, "the corrupt copy was replaced from the database")
        XCTAssertEqual(try ArtifactStore.hashFile(cached).sha256, v.sha256)
        XCTAssertEqual(try files(r.directory), try files(src))
        XCTAssertFalse(try service.resolve("t@1").fetched, "a healthy cache is used as is")
    }

    func testAModifiedExtractedFileIsReplacedOnResolve() throws {
        try addTinyBase()
        let src = try adapterDir(seed: 3)
        try service.importAdapter(task: "t", directory: src, actor: "a")
        let dir = try service.resolve("t@1").directory
        try Data("{}".utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
        XCTAssertEqual(try files(try service.resolve("t@1").directory), try files(src))
    }

    func testACorruptChunkInTheDatabaseIsAnError() throws {
        try addTinyBase()
        let v = try service.importAdapter(task: "t", directory: try adapterDir(seed: 4), actor: "a")
        let c = try db.connect()
        try c.execute("UPDATE artifact_chunks SET bytes = overlay(bytes placing '\\x00'::bytea from 600 for 1) WHERE sha256 = $1",
                      [.text(v.sha256)])
        try FileManager.default.removeItem(at: service.store.artifacts.cachePath(v.sha256))
        XCTAssertThrowsError(try service.resolve("t@1")) { e in
            guard case RegistryError.artifactCorrupt(let sha, "database", _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(sha, v.sha256)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: service.store.artifacts.cachePath(v.sha256).path),
                       "nothing unverified is left in the cache")
    }

    func testLargeArtifactsAreStoredInChunksAndReassembled() throws {
        let c = try db.connect()
        let store = ArtifactStore(cacheDirectory: scratch.appendingPathComponent("cache"), chunkSize: 1000)
        let blob = scratch.appendingPathComponent("blob")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let bytes = Data((0..<10_500).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) })
        try bytes.write(to: blob)
        let (sha, size) = try ArtifactStore.hashFile(blob)
        try c.withTransaction { try store.put(blob, sha256: sha, size: size, mediaType: "test", on: $0) }
        XCTAssertEqual(try c.execute("SELECT count(*) AS n FROM artifact_chunks WHERE sha256 = $1", [.text(sha)])[0].int("n"), 11)
        XCTAssertFalse(try c.withTransaction { try store.put(blob, sha256: sha, size: size, mediaType: "test", on: $0) },
                       "a stored blob is not stored twice")
        try FileManager.default.removeItem(at: store.cachePath(sha))
        let got = try store.fetch(sha, on: c)
        XCTAssertTrue(got.fetched)
        XCTAssertEqual(try Data(contentsOf: got.url), bytes)
        try c.execute("DELETE FROM artifact_chunks WHERE sha256 = $1 AND seq = 5", [.text(sha)])
        try FileManager.default.removeItem(at: store.cachePath(sha))
        XCTAssertThrowsError(try store.fetch(sha, on: c)) { e in
            guard case RegistryError.artifactCorrupt(_, "database", let detail) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(detail.contains("chunk 5"), detail)
        }
    }

    func testAVersionRowAndItsBytesCommitTogether() throws {
        try addTinyBase()
        let c = try db.connect()
        struct Abort: Error {}
        XCTAssertThrowsError(try c.withTransaction { c in
            let p = try service.prepareAdapter(directory: try adapterDir(seed: 6), task: "t")
            defer { p.discard() }
            _ = try service.register(p, task: "t", actor: "a", on: c)
            throw Abort()
        })
        XCTAssertEqual(try c.execute("SELECT count(*) AS n FROM artifacts")[0].int("n"), 0)
        XCTAssertEqual(try c.execute("SELECT count(*) AS n FROM adapter_versions")[0].int("n"), 0)
    }

    func testTheArchiveIsDeterministicAndReadableByTar() throws {
        let src = try adapterDir(seed: 7)
        let names = try AdapterArchive.files(in: src)
        let a = scratch.appendingPathComponent("a.tar"), b = scratch.appendingPathComponent("b.tar")
        let ra = try AdapterArchive.write(directory: src, names: names, to: a)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 0)],
                                              ofItemAtPath: src.appendingPathComponent("adapter_config.json").path)
        let rb = try AdapterArchive.write(directory: src, names: names, to: b)
        XCTAssertEqual(ra.sha256, rb.sha256, "file times do not change the bytes")
        XCTAssertEqual(try AdapterArchive.digest(directory: src, names: names).sha256, ra.sha256)
        let tar = try runTar(["-tf", a.path])
        XCTAssertEqual(tar.split(separator: "\n").map(String.init), ["adapter_config.json", "adapter_model.safetensors"])
        let out = scratch.appendingPathComponent("x")
        try AdapterArchive.extract(a, to: out)
        XCTAssertEqual(try files(out), try files(src))
    }

    func runTar(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/tar")
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let d = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
