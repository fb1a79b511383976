import Crypto
import Foundation

/// How an adapter directory is stored: one deterministic POSIX ustar archive of its files,
/// in name order, with mode 0644, uid/gid 0, mtime 0 and empty owner names, so the same files
/// always give the same bytes and the same sha256. Any `tar` can read it (`tar -xf`), which
/// keeps the artifact inspectable by hand. Sizes past ustar's 8 GiB octal limit use the GNU
/// base-256 size encoding. Only flat, regular files are stored.
public enum AdapterArchive {
    static let block = 512
    /// Files an adapter directory must hold (PEFT's layout).
    public static let requiredFiles = ["adapter_config.json", "adapter_model.safetensors"]
    /// Files stored besides the required ones when present.
    public static let optionalFiles = ["README.md"]

    /// The files of `directory` that make up the adapter, in the order they are stored.
    public static func files(in directory: URL) throws -> [String] {
        for f in requiredFiles where !FileManager.default.fileExists(atPath: directory.appendingPathComponent(f).path) {
            throw RegistryError.invalidArtifact(path: directory.path, reason: "missing \(f) (a PEFT adapter directory holds \(requiredFiles.joined(separator: " and ")))")
        }
        let optional = optionalFiles.filter { FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path) }
        return (requiredFiles + optional).sorted()
    }

    /// Writes the archive of `names` (files in `directory`) to `destination`, streaming.
    /// Returns the archive's sha256 and size.
    @discardableResult
    public static func write(directory: URL, names: [String], to destination: URL) throws -> (sha256: String, size: Int) {
        FileManager.default.createFile(atPath: destination.path, contents: nil)
        let out = try FileHandle(forWritingTo: destination)
        defer { try? out.close() }
        return try stream(directory: directory, names: names) { out.write(Data($0)) }
    }

    /// The sha256 and size the archive of these files would have, without writing it (checks
    /// an extracted directory against its version's sha256).
    public static func digest(directory: URL, names: [String]) throws -> (sha256: String, size: Int) {
        try stream(directory: directory, names: names) { _ in }
    }

    static func stream(directory: URL, names: [String], sink: ([UInt8]) -> Void) throws -> (sha256: String, size: Int) {
        var hasher = SHA256()
        var total = 0
        func emit(_ bytes: [UInt8]) {
            hasher.update(data: bytes)
            sink(bytes)
            total += bytes.count
        }
        for name in names.sorted() {
            let url = directory.appendingPathComponent(name)
            let attrs = try FileManager.default.attributesOfItem(atPath: url.path)
            guard (attrs[.type] as? FileAttributeType) == .typeRegular, let size = (attrs[.size] as? NSNumber)?.intValue else {
                throw RegistryError.invalidArtifact(path: url.path, reason: "not a regular file")
            }
            emit(try header(name: name, size: size))
            let input = try FileHandle(forReadingFrom: url)
            defer { try? input.close() }
            var copied = 0
            while true {
                let chunk = input.readData(ofLength: 1 << 20)
                if chunk.isEmpty { break }
                copied += chunk.count
                emit([UInt8](chunk))
            }
            guard copied == size else { throw RegistryError.io(path: url.path, reason: "file changed while being archived") }
            let pad = (block - size % block) % block
            if pad > 0 { emit([UInt8](repeating: 0, count: pad)) }
        }
        emit([UInt8](repeating: 0, count: 2 * block))
        return (hasher.finalize().hexString, total)
    }

    static func header(name: String, size: Int) throws -> [UInt8] {
        let nameBytes = Array(name.utf8)
        guard !nameBytes.isEmpty, nameBytes.count <= 100, !name.contains("/"), name != "..", name != "." else {
            throw RegistryError.invalidArtifact(path: name, reason: "file name not storable (flat names up to 100 bytes)")
        }
        var h = [UInt8](repeating: 0, count: block)
        func put(_ s: String, at offset: Int) { for (i, b) in s.utf8.enumerated() { h[offset + i] = b } }
        put(name, at: 0)
        put("0000644", at: 100)   // mode
        put("0000000", at: 108)   // uid
        put("0000000", at: 116)   // gid
        if size < 0o77777777777 {
            put(String(format: "%011o", size), at: 124)
        } else {
            // GNU base-256: high bit of the first byte set, then the size big-endian.
            h[124] = 0x80
            var v = UInt64(size)
            for i in stride(from: 135, through: 128, by: -1) { h[i] = UInt8(v & 0xFF); v >>= 8 }
        }
        put("00000000000", at: 136) // mtime
        put("        ", at: 148)     // checksum field counts as spaces while summing
        h[156] = UInt8(ascii: "0")   // regular file
        put("ustar", at: 257)        // magic "ustar\0"
        put("00", at: 263)           // version
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), at: 148)
        h[154] = 0
        h[155] = UInt8(ascii: " ")
        return h
    }

    /// Extracts an archive written by `write` into `directory` (created; must not exist or be
    /// empty). Refuses anything else: other entry types, paths, bad checksums, truncation.
    public static func extract(_ archive: URL, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let input = try FileHandle(forReadingFrom: archive)
        defer { try? input.close() }
        var offset = 0
        func fail(_ reason: String) -> RegistryError {
            .invalidArtifact(path: archive.path, reason: "byte offset \(offset): \(reason)")
        }
        while true {
            let h = [UInt8](input.readData(ofLength: block))
            if h.count < block { throw fail("truncated archive") }
            if h.allSatisfy({ $0 == 0 }) { return }
            var sum = 0
            for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard let recorded = octal(h[148..<156]), recorded == sum else { throw fail("bad header checksum") }
            let nameEnd = h[0..<100].firstIndex(of: 0) ?? 100
            let name = String(decoding: h[0..<nameEnd], as: UTF8.self)
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { throw fail("entry name '\(name)' not allowed") }
            guard h[156] == UInt8(ascii: "0") || h[156] == 0 else { throw fail("entry '\(name)' is not a regular file") }
            let size: Int
            if h[124] & 0x80 != 0 {
                var v = 0
                for i in 128..<136 { v = v << 8 | Int(h[i]) }
                size = v
            } else {
                guard let s = octal(h[124..<136]) else { throw fail("bad size field for '\(name)'") }
                size = s
            }
            offset += block
            let dest = directory.appendingPathComponent(name)
            FileManager.default.createFile(atPath: dest.path, contents: nil)
            let out = try FileHandle(forWritingTo: dest)
            var remaining = size
            while remaining > 0 {
                let chunk = input.readData(ofLength: min(remaining, 1 << 20))
                if chunk.isEmpty { try? out.close(); throw fail("truncated data of '\(name)'") }
                out.write(chunk)
                remaining -= chunk.count
            }
            try out.close()
            offset += size
            let pad = (block - size % block) % block
            if pad > 0 { _ = input.readData(ofLength: pad); offset += pad }
        }
    }

    static func octal(_ bytes: ArraySlice<UInt8>) -> Int? {
        var v = 0
        var seen = false
        for b in bytes {
            if b == 0 || b == UInt8(ascii: " ") { if seen { break } else { continue } }
            guard b >= 48 && b <= 55 else { return nil }
            v = v * 8 + Int(b - 48)
            seen = true
        }
        return seen ? v : 0
    }
}
