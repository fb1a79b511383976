import Foundation
import Quantization

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public var name: String
    /// "F32", "F16", "BF16", "U8", "I8", ...
    public var dtype: String
    public var shape: [Int]
    /// Absolute byte range of the data in the file.
    public var fileOffset: Int
    public var byteCount: Int
}

/// A `.safetensors` file, memory-mapped and validated when opened.
///
/// Format (huggingface/safetensors, docs "Format"): an 8-byte little-endian header length N, N bytes
/// of UTF-8 JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
/// relative to the byte after the header) plus an optional "__metadata__" string map, then the data.
public final class SafetensorsFile: @unchecked Sendable {
    /// Bytes per element of each dtype the format defines.
    public static let dtypeSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8,
    ]
    /// The safetensors library refuses headers above 100 MB (`MAX_HEADER_SIZE`); so do we.
    public static let maxHeaderBytes = 100_000_000

    public let url: URL
    public var path: String { url.path }
    public let metadata: [String: String]
    /// Tensor names in file order (by data offset).
    public let names: [String]
    private let entries: [String: SafetensorsTensorInfo]
    private let file: MappedFile

    public init(_ url: URL) throws {
        self.url = url
        let file = try MappedFile(url)
        self.file = file
        let path = url.path
        func bad(_ offset: Int?, _ reason: String) -> ModelError { .malformedFile(path: path, offset: offset, reason: reason) }

        var r = ByteReader(file)
        let rawLength = try r.read(UInt64.self, "the 8-byte header length")
        guard rawLength <= UInt64(Self.maxHeaderBytes) else {
            throw bad(0, "header length \(rawLength) is absurd (limit \(Self.maxHeaderBytes) bytes)")
        }
        let headerLength = Int(rawLength)
        guard headerLength <= file.count - 8 else {
            throw bad(0, "header length \(headerLength) runs past the end of the \(file.count)-byte file")
        }
        let dataStart = 8 + headerLength
        let dataSize = file.count - dataStart
        let headerBytes = Data(file.slice(8, headerLength))
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes, options: [])
        } catch {
            throw bad(8, "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw bad(8, "header is not a JSON object") }

        var metadata: [String: String] = [:]
        var entries: [String: SafetensorsTensorInfo] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad(8, "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad(8, "__metadata__[\"\(k)\"] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any] else { throw bad(8, "tensor '\(name)': entry is not an object") }
            guard let dtype = e["dtype"] as? String else { throw bad(8, "tensor '\(name)': missing dtype") }
            guard let elemSize = Self.dtypeSizes[dtype] else { throw bad(8, "tensor '\(name)': unknown dtype \(dtype)") }
            guard let shapeAny = e["shape"] as? [Any] else { throw bad(8, "tensor '\(name)': missing shape") }
            var shape: [Int] = []
            var numel = 1
            for d in shapeAny {
                guard let n = Self.integer(d), n >= 0 else { throw bad(8, "tensor '\(name)': bad shape \(shapeAny)") }
                shape.append(n)
                let (p, o) = numel.multipliedReportingOverflow(by: n)
                guard !o, p <= file.count else { throw bad(8, "tensor '\(name)': shape \(shapeAny) is larger than the file") }
                numel = p
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2,
                  let begin = Self.integer(offs[0]), let end = Self.integer(offs[1]) else {
                throw bad(8, "tensor '\(name)': missing or bad data_offsets")
            }
            guard begin >= 0, end >= begin else {
                throw bad(8, "tensor '\(name)': data_offsets [\(begin), \(end)] are not an increasing range")
            }
            guard end <= dataSize else {
                let at = dataStart &+ begin
                throw bad(at < 0 ? 8 : at, "tensor '\(name)': data_offsets [\(begin), \(end)] point outside the file (data section is \(dataSize) bytes from offset \(dataStart))")
            }
            guard end - begin == numel * elemSize else {
                throw bad(dataStart + begin, "tensor '\(name)': \(end - begin) bytes of data for shape \(shape) of \(dtype) (\(numel * elemSize) expected)")
            }
            entries[name] = SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape,
                                                  fileOffset: dataStart + begin, byteCount: end - begin)
        }
        // Tensors may not overlap (the safetensors library also requires them to be contiguous).
        let ordered = entries.values.sorted { ($0.fileOffset, $0.byteCount, $0.name) < ($1.fileOffset, $1.byteCount, $1.name) }
        var previousEnd = dataStart
        var previousName = ""
        for t in ordered {
            if t.byteCount == 0 { continue }
            guard t.fileOffset >= previousEnd else {
                throw bad(t.fileOffset, "tensor '\(t.name)' overlaps tensor '\(previousName)'")
            }
            previousEnd = t.fileOffset + t.byteCount
            previousName = t.name
        }
        self.metadata = metadata
        self.entries = entries
        self.names = ordered.map(\.name)
    }

    private static func integer(_ v: Any) -> Int? {
        if let n = v as? Int { return n }
        if let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) { return i }
        return nil
    }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    public func tensorInfo(_ name: String) -> SafetensorsTensorInfo? { entries[name] }

    public func info(_ name: String) -> (dtype: String, shape: [Int])? {
        entries[name].map { ($0.dtype, $0.shape) }
    }

    private func entry(_ name: String) throws -> SafetensorsTensorInfo {
        guard let e = entries[name] else { throw ModelError.missingTensor(path: path, name: name, expectedShape: []) }
        return e
    }

    /// The tensor's bytes as stored, valid while this file object is alive.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let e = try entry(name)
        return file.slice(e.fileOffset, e.byteCount)
    }

    /// A copy of the tensor's bytes as stored.
    public func data(_ name: String) throws -> Data { Data(try rawBytes(name)) }

    /// The tensor converted to fp32, row-major. F32, F16, BF16 (and F64) only.
    public func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        let numel = e.byteCount / Self.dtypeSizes[e.dtype]!
        let src = file.slice(e.fileOffset, e.byteCount)
        let type: GGMLType
        switch e.dtype {
        case "F32": type = .f32
        case "F16": type = .f16
        case "BF16": type = .bf16
        case "F64":
            return (0..<numel).map { Float(src.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
        default:
            throw ModelError.unsupportedTensorType(path: path, name: name, type: e.dtype)
        }
        if numel == 0 { return [] }
        return [Float](unsafeUninitializedCapacity: numel) { buf, initialized in
            GGUFDequantize.row(type, src.baseAddress!, count: numel, into: buf.baseAddress!)
            initialized = numel
        }
    }
}
