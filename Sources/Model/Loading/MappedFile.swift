import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Tensor data is read straight from the map, so loading a
/// model holds only the fp32 copies it produces, not a second copy of the file.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    private let base: UnsafeMutableRawPointer?

    public init(_ url: URL) throws {
        path = url.path
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw ModelError.fileNotFound(path: url.path) }
            throw ModelError.malformedFile(path: url.path, offset: nil, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelError.malformedFile(path: url.path, offset: nil, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ModelError.malformedFile(path: url.path, offset: nil, reason: "not a regular file")
        }
        count = Int(st.st_size)
        if count == 0 {
            base = nil
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw ModelError.malformedFile(path: url.path, offset: nil, reason: "cannot map: \(String(cString: strerror(errno)))")
        }
        base = p
    }

    deinit {
        if let base { munmap(base, count) }
    }

    /// The mapped bytes (empty for an empty file). Valid while this object is alive.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Bytes [offset, offset + length), which the caller has checked lie inside the file.
    public func slice(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
    }

    func malformed(_ offset: Int?, _ reason: String) -> ModelError {
        .malformedFile(path: path, offset: offset, reason: reason)
    }
}

/// A bounds-checked little-endian cursor over a mapped file. Every read that would pass the end of
/// the file throws `malformedFile` naming the offset where the read started.
struct ByteReader {
    let file: MappedFile
    var offset: Int

    init(_ file: MappedFile, offset: Int = 0) {
        self.file = file
        self.offset = offset
    }

    var remaining: Int { file.count - offset }

    mutating func require(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= remaining else {
            throw file.malformed(offset, "truncated: \(what) needs \(n) bytes, \(max(remaining, 0)) left in a \(file.count)-byte file")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        try require(MemoryLayout<T>.size, what)
        let v = file.bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readFloat(_ what: String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what))
    }

    mutating func readDouble(_ what: String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what))
    }

    /// A UTF-8 string of `length` bytes (invalid UTF-8 is repaired, never fatal).
    mutating func readString(length: Int, _ what: String) throws -> String {
        try require(length, what)
        let s = String(decoding: file.slice(offset, length), as: UTF8.self)
        offset += length
        return s
    }

    mutating func skip(_ n: Int, _ what: String) throws {
        try require(n, what)
        offset += n
    }
}
