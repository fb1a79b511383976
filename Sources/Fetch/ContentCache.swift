import Crypto
import Foundation

/// The on-disk cache, content-addressed:
///
///     <root>/blobs/sha256/<hex>       complete, verified files, named by their sha256
///     <root>/refs/<key>.json          per URL: which blob it resolved to, and the validators seen
///     <root>/refs/models/<key>.json   per repository spec: its files, and which optional ones are absent
///     <root>/snapshots/<name>/        what callers open: links named like the source files -> blobs
///     <root>/tmp/<key>.partial(.json) an interrupted download and its validator, for resuming
///     <root>/locks/<key>.lock         flock per URL, so concurrent processes download a URL once
///
/// `<key>` is the sha256 of the URL. Only verified files ever get a blob name (rename from tmp/).
public struct ContentCache: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    var blobsDirectory: URL { root.appendingPathComponent("blobs/sha256") }
    var refsDirectory: URL { root.appendingPathComponent("refs") }
    var modelRefsDirectory: URL { root.appendingPathComponent("refs/models") }
    var snapshotsDirectory: URL { root.appendingPathComponent("snapshots") }
    var tmpDirectory: URL { root.appendingPathComponent("tmp") }
    var locksDirectory: URL { root.appendingPathComponent("locks") }

    public func blobPath(sha256: String) -> URL { blobsDirectory.appendingPathComponent(sha256.lowercased()) }

    static func key(_ text: String) -> String { hex(SHA256.hash(data: Data(text.utf8))) }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    func ensureDirectories() throws {
        for dir in [blobsDirectory, modelRefsDirectory, snapshotsDirectory, tmpDirectory, locksDirectory] {
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            } catch {
                throw FetchError.io(path: dir.path, operation: "create directory", errno: errnoOf(error))
            }
        }
    }

    /// Every blob in the cache.
    public func blobs() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: blobsDirectory.path)) ?? []
        return names.filter { SHA256Hex.isValid($0) }.sorted().map { blobsDirectory.appendingPathComponent($0) }
    }

    /// Blobs whose content does not hash to their name (empty for a healthy cache). Reads every blob.
    public func corruptBlobs() throws -> [URL] {
        try blobs().filter { try Self.sha256(ofFile: $0) != $0.lastPathComponent }
    }

    /// The sha256 (lowercase hex) of bytes in memory.
    public static func sha256(_ data: Data) -> String { hex(SHA256.hash(data: data)) }

    /// The sha256 (lowercase hex) of a file's content.
    public static func sha256(ofFile url: URL) throws -> String {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FetchError.io(path: url.path, operation: "open", errno: errno) }
        defer { close(fd) }
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw FetchError.io(path: url.path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return hex(hasher.finalize())
    }

    /// Partial downloads waiting to be resumed.
    public func partialDownloads() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: tmpDirectory.path)) ?? []
        return names.filter { $0.hasSuffix(".partial") }.map { tmpDirectory.appendingPathComponent($0) }
    }

    // MARK: refs

    func refPath(url: String) -> URL { refsDirectory.appendingPathComponent(Self.key(url) + ".json") }

    func readRef(url: String) -> FileRef? {
        guard let data = try? Data(contentsOf: refPath(url: url)),
              let ref = try? JSONDecoder().decode(FileRef.self, from: data), ref.url == url else { return nil }
        return ref
    }

    func writeRef(_ ref: FileRef) throws {
        try writeAtomically(try JSONEncoder.sorted.encode(ref), to: refPath(url: ref.url))
    }

    func modelRefPath(spec: String) -> URL { modelRefsDirectory.appendingPathComponent(Self.key(spec) + ".json") }

    func readModelRef(spec: String) -> ModelRef? {
        guard let data = try? Data(contentsOf: modelRefPath(spec: spec)),
              let ref = try? JSONDecoder().decode(ModelRef.self, from: data), ref.spec == spec else { return nil }
        return ref
    }

    func writeModelRef(_ ref: ModelRef) throws {
        try writeAtomically(try JSONEncoder.sorted.encode(ref), to: modelRefPath(spec: ref.spec))
    }

    /// Writes to a unique temporary name beside `path`, then renames over it.
    func writeAtomically(_ data: Data, to path: URL) throws {
        let tmp = path.deletingLastPathComponent()
            .appendingPathComponent(".\(path.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        do {
            try data.write(to: tmp)
        } catch {
            throw FetchError.io(path: tmp.path, operation: "write", errno: errnoOf(error))
        }
        if rename(tmp.path, path.path) != 0 {
            let e = errno
            unlink(tmp.path)
            throw FetchError.io(path: path.path, operation: "rename into place", errno: e)
        }
    }

    // MARK: partial downloads

    func partialPath(url: String) -> URL { tmpDirectory.appendingPathComponent(Self.key(url) + ".partial") }
    func partialStatePath(url: String) -> URL { tmpDirectory.appendingPathComponent(Self.key(url) + ".partial.json") }

    func discardPartial(url: String) {
        unlink(partialPath(url: url).path)
        unlink(partialStatePath(url: url).path)
    }

    /// Moves a verified download to its blob name. If the blob already exists (same content fetched
    /// through another URL) the download is simply dropped.
    func installBlob(from partial: URL, sha256: String) throws -> URL {
        let blob = blobPath(sha256: sha256)
        if FileManager.default.fileExists(atPath: blob.path) {
            unlink(partial.path)
            return blob
        }
        if rename(partial.path, blob.path) != 0 {
            throw FetchError.io(path: blob.path, operation: "rename download into the cache", errno: errno)
        }
        return blob
    }

    // MARK: locks

    /// Runs `body` holding an exclusive flock on the URL's lock file; a second process blocks here
    /// until the first has finished (and then finds the file cached).
    func withLock<T>(url: String, _ body: () throws -> T) throws -> T {
        let path = locksDirectory.appendingPathComponent(Self.key(url) + ".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FetchError.io(path: path, operation: "open lock", errno: errno) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw FetchError.io(path: path, operation: "flock", errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    // MARK: snapshots

    /// Points `<snapshot>/<name>` at the blob with a relative symlink, replacing an older link atomically.
    func link(name: String, sha256: String, in snapshot: URL) throws -> URL {
        do {
            try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        } catch {
            throw FetchError.io(path: snapshot.path, operation: "create directory", errno: errnoOf(error))
        }
        let target = "../../blobs/sha256/\(sha256)"
        let path = snapshot.appendingPathComponent(name)
        if let existing = try? FileManager.default.destinationOfSymbolicLink(atPath: path.path), existing == target {
            return path
        }
        let tmp = snapshot.appendingPathComponent(".\(name).\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        if symlink(target, tmp.path) != 0 {
            throw FetchError.io(path: tmp.path, operation: "symlink", errno: errno)
        }
        if rename(tmp.path, path.path) != 0 {
            let e = errno
            unlink(tmp.path)
            throw FetchError.io(path: path.path, operation: "rename link into place", errno: e)
        }
        return path
    }
}

/// What a URL resolved to the last time it was downloaded, with the validators the server sent.
struct FileRef: Codable, Equatable {
    var url: String
    var sha256: String
    var size: Int64
    var etag: String?
    var lastModified: String?
    /// The sha256 the server vouched for via X-Linked-Etag, if any.
    var linkedSHA256: String?
}

/// A repository spec's files, so a cache hit needs no discovery requests.
struct ModelRef: Codable, Equatable {
    struct File: Codable, Equatable {
        var name: String
        var url: String
        var sha256: String
        var size: Int64
    }
    var spec: String
    var files: [File]
    /// Optional files that were absent (404) at the source.
    var absent: [String]
}

/// The state file beside a partial download: which URL, and the validator the bytes belong to.
struct PartialState: Codable {
    var url: String
    var etag: String?
    var lastModified: String?
    var ifRange: String? { etag ?? lastModified }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        return e
    }
}

func errnoOf(_ error: Error) -> Int32 {
    let ns = error as NSError
    if ns.domain == NSPOSIXErrorDomain { return Int32(ns.code) }
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return Int32(underlying.code)
    }
    return EIO
}
