import Crypto
import Foundation
import Logging

/// Content-addressed blobs in PostgreSQL (`artifacts` + `artifact_chunks`), the source of
/// truth, with a local cache under `<cache>/sha256/<hex>`. Every read is verified: a cache file
/// that does not hash to its name is deleted and fetched again; bytes from the database that
/// do not hash to the recorded sha256 are an error.
public struct ArtifactStore: Sendable {
    /// 8 MiB chunks: far below bytea's 1 GB limit, large enough that a chunk's overhead vanishes.
    public static let defaultChunkSize = 8 << 20

    public let cacheDirectory: URL
    public let chunkSize: Int
    let logger: Logger

    public init(cacheDirectory: URL, chunkSize: Int = ArtifactStore.defaultChunkSize,
                logger: Logger = Logger(label: "lora.registry.artifacts")) {
        self.cacheDirectory = cacheDirectory
        self.chunkSize = chunkSize
        self.logger = logger
    }

    /// Where the verified copy of a blob lives.
    public func cachePath(_ sha256: String) -> URL {
        cacheDirectory.appendingPathComponent("sha256").appendingPathComponent(sha256)
    }

    /// Stores a file's bytes as an artifact on `conn` (call inside the transaction that also
    /// inserts the row referring to it). A blob already stored is not stored twice. The file
    /// is also copied into the cache.
    @discardableResult
    public func put(_ file: URL, sha256: String, size: Int, mediaType: String, on conn: Connection) throws -> Bool {
        let chunkCount = (size + chunkSize - 1) / chunkSize
        let inserted = try conn.execute("""
            INSERT INTO artifacts (sha256, size, chunk_size, chunk_count, media_type)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING RETURNING sha256
            """, [.text(sha256), .int(size), .int(chunkSize), .int(chunkCount), .text(mediaType)])
        if inserted.rowCount == 1 {
            let input = try FileHandle(forReadingFrom: file)
            defer { try? input.close() }
            var hasher = SHA256()
            var total = 0
            for seq in 0..<chunkCount {
                let data = input.readData(ofLength: chunkSize)
                hasher.update(data: data)
                total += data.count
                try conn.execute("INSERT INTO artifact_chunks (sha256, seq, bytes) VALUES ($1, $2, $3)",
                                 [.text(sha256), .int(seq), .bytes([UInt8](data))])
            }
            guard total == size, hasher.finalize().hexString == sha256 else {
                throw RegistryError.io(path: file.path, reason: "file changed while being stored")
            }
        }
        try? copyIntoCache(file, sha256: sha256)
        return inserted.rowCount == 1
    }

    /// Result of a verified read.
    public struct Verified: Sendable {
        public let url: URL
        public let sha256: String
        public let size: Int
        /// True when the bytes came from the database now (cache missing or corrupt).
        public let fetched: Bool
        /// True when a cache file existed but did not match and was replaced.
        public let repairedCache: Bool
    }

    /// Returns a local, verified copy of the artifact.
    public func fetch(_ sha256: String, on conn: Connection) throws -> Verified {
        let path = cachePath(sha256)
        var repaired = false
        if FileManager.default.fileExists(atPath: path.path) {
            let (digest, size) = try Self.hashFile(path)
            if digest == sha256 { return Verified(url: path, sha256: sha256, size: size, fetched: false, repairedCache: false) }
            logger.warning("cache file \(path.path) hashes to \(digest), not its name: deleting and fetching it again")
            try? FileManager.default.removeItem(at: path)
            repaired = true
        }
        let meta = try conn.execute("SELECT size, chunk_count FROM artifacts WHERE sha256 = $1", [.text(sha256)])
        guard let row = meta.first else { throw RegistryError.notFound(kind: "artifact", name: sha256) }
        let size = try row.int("size"), chunkCount = try row.int("chunk_count")
        try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = path.deletingLastPathComponent().appendingPathComponent(".\(sha256).\(getpid()).\(UUID().uuidString).tmp")
        FileManager.default.createFile(atPath: tmp.path, contents: nil)
        var ok = false
        defer { if !ok { try? FileManager.default.removeItem(at: tmp) } }
        let out = try FileHandle(forWritingTo: tmp)
        var hasher = SHA256()
        var total = 0
        // One chunk per query keeps memory at one chunk whatever the artifact's size.
        for seq in 0..<chunkCount {
            let r = try conn.execute("SELECT bytes FROM artifact_chunks WHERE sha256 = $1 AND seq = $2",
                                     [.text(sha256), .int(seq)])
            guard let c = r.first else {
                try? out.close()
                throw RegistryError.artifactCorrupt(sha256: sha256, source: "database", detail: "chunk \(seq) of \(chunkCount) is missing")
            }
            let bytes = try c.bytes("bytes")
            hasher.update(data: bytes)
            total += bytes.count
            out.write(Data(bytes))
        }
        try out.close()
        let digest = hasher.finalize().hexString
        guard total == size, digest == sha256 else {
            throw RegistryError.artifactCorrupt(sha256: sha256, source: "database",
                                                detail: "stored chunks give \(total) bytes hashing to \(digest) (recorded size \(size))")
        }
        try Self.replace(path, with: tmp)
        ok = true
        return Verified(url: path, sha256: sha256, size: size, fetched: true, repairedCache: repaired)
    }

    func copyIntoCache(_ file: URL, sha256: String) throws {
        let path = cachePath(sha256)
        if FileManager.default.fileExists(atPath: path.path) { return }
        try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = path.deletingLastPathComponent().appendingPathComponent(".\(sha256).\(getpid()).\(UUID().uuidString).tmp")
        try FileManager.default.copyItem(at: file, to: tmp)
        try Self.replace(path, with: tmp)
    }

    /// Atomic rename over any existing file.
    static func replace(_ path: URL, with tmp: URL) throws {
        guard rename(tmp.path, path.path) == 0 else {
            throw RegistryError.io(path: path.path, reason: "rename failed: errno \(errno)")
        }
    }

    /// sha256 of bytes in memory, lowercase hex.
    public static func sha256(_ data: Data) -> String { SHA256.hash(data: data).hexString }

    /// sha256 and size of a file, streaming.
    public static func hashFile(_ url: URL) throws -> (sha256: String, size: Int) {
        let h = try FileHandle(forReadingFrom: url)
        defer { try? h.close() }
        var hasher = SHA256()
        var total = 0
        while true {
            let d = h.readData(ofLength: 4 << 20)
            if d.isEmpty { break }
            hasher.update(data: d)
            total += d.count
        }
        return (hasher.finalize().hexString, total)
    }
}
