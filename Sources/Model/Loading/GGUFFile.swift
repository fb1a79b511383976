import Foundation
import Quantization

/// One tensor of a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// ggml's `ne`: the fastest-varying dimension first.
    public var ne: [Int]
    /// PyTorch order (`ne` reversed): a linear weight is [out, in].
    public var shape: [Int] { ne.reversed() }
    public var type: GGMLType
    /// Offset relative to the start of the data section, as stored.
    public var offset: Int
    /// Absolute byte offset of the data in the file.
    public var fileOffset: Int
    public var byteCount: Int
    public var elementCount: Int
    /// Bytes of one row (`ne[0]` weights, whole blocks).
    public var rowBytes: Int { ne[0] / type.blockSize * type.bytesPerBlock }
}

/// A GGUF v2/v3 file (little-endian), memory-mapped and validated when opened.
///
/// Layout (ggml docs/gguf.md; `gguf` Python package `gguf_reader.py`): magic "GGUF", u32 version,
/// u64 tensor count, u64 key/value count, the key/values (u64-length string key, u32 type, value),
/// the tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding to
/// `general.alignment` (default 32), then the data section. Every count, length and offset is checked
/// against the file's size before anything is allocated, so bad input is an error naming the byte
/// offset, never a crash or a huge allocation.
public final class GGUFFile: @unchecked Sendable {
    public static let magic: UInt32 = 0x4655_4747  // "GGUF" read little-endian
    public static let defaultAlignment = 32
    /// ggml's GGML_MAX_DIMS.
    public static let maxDims = 4
    /// Nested metadata arrays deeper than this are refused (no real file nests more than 2).
    public static let maxArrayDepth = 8

    public let url: URL
    public var path: String { url.path }
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    private let byName: [String: Int]
    private let file: MappedFile

    public init(_ url: URL) throws {
        self.url = url
        let file = try MappedFile(url)
        self.file = file
        var r = ByteReader(file)

        let magic = try r.read(UInt32.self, "the magic")
        guard magic == Self.magic else {
            throw file.malformed(0, String(format: "bad magic 0x%08x: not a GGUF file", magic))
        }
        let version = try r.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw file.malformed(4, "big-endian GGUF (version \(version.byteSwapped)) is not supported")
            }
            throw file.malformed(4, "unsupported GGUF version \(version) (2 and 3 are supported)")
        }
        self.version = version

        let tensorCountAt = r.offset
        let tensorCount = try r.read(UInt64.self, "the tensor count")
        let kvCountAt = r.offset
        let kvCount = try r.read(UInt64.self, "the key/value count")
        // A key/value takes at least 13 bytes (8-byte key length, 4-byte type, 1-byte value), a tensor
        // info at least 24 (8-byte name length, 4-byte n_dims, 4-byte type, 8-byte offset).
        guard kvCount <= UInt64(r.remaining / 13) else {
            throw file.malformed(kvCountAt, "key/value count \(kvCount) is absurd for a \(file.count)-byte file")
        }
        guard tensorCount <= UInt64(r.remaining / 24) else {
            throw file.malformed(tensorCountAt, "tensor count \(tensorCount) is absurd for a \(file.count)-byte file")
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(Int(kvCount))
        for _ in 0..<Int(kvCount) {
            let keyAt = r.offset
            let key = try Self.readString(&r, "a metadata key")
            let typeAt = r.offset
            let type = try r.read(UInt32.self, "the type of '\(key)'")
            let value = try Self.readValue(&r, type: type, typeAt: typeAt, key: key, depth: 0)
            if metadata[key] != nil { throw file.malformed(keyAt, "duplicate metadata key '\(key)'") }
            metadata[key] = value
            keys.append(key)
        }
        self.metadata = metadata
        self.metadataKeys = keys

        var alignment = Self.defaultAlignment
        if let a = metadata["general.alignment"] {
            guard let v = a.int, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw ModelError.malformedFile(path: url.path, offset: nil, reason: "general.alignment \(a) is not a power of two")
            }
            alignment = v
        }
        self.alignment = alignment

        struct Raw { var name: String; var ne: [Int]; var type: GGMLType; var offset: Int; var at: Int; var elements: Int; var bytes: Int }
        var raws: [Raw] = []
        raws.reserveCapacity(Int(tensorCount))
        for _ in 0..<Int(tensorCount) {
            let at = r.offset
            let name = try Self.readString(&r, "a tensor name")
            let nDimsAt = r.offset
            let nDims = try r.read(UInt32.self, "n_dims of '\(name)'")
            guard nDims >= 1, nDims <= UInt32(Self.maxDims) else {
                throw file.malformed(nDimsAt, "tensor '\(name)' has \(nDims) dimensions (1...\(Self.maxDims) allowed)")
            }
            var ne: [Int] = []
            var elements = 1
            for _ in 0..<Int(nDims) {
                let dAt = r.offset
                let d = try r.read(UInt64.self, "a dimension of '\(name)'")
                let (p, o) = elements.multipliedReportingOverflow(by: Int(clamping: d))
                guard d <= UInt64(file.count) * 8, !o, p <= file.count * 8 else {
                    throw file.malformed(dAt, "tensor '\(name)' dimension \(d) is absurd for a \(file.count)-byte file")
                }
                ne.append(Int(d))
                elements = p
            }
            let typeAt = r.offset
            let rawType = try r.read(UInt32.self, "the type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw file.malformed(typeAt, "tensor '\(name)' has unknown ggml type \(rawType)")
            }
            guard ne[0] % type.blockSize == 0 else {
                throw file.malformed(typeAt, "tensor '\(name)' row length \(ne[0]) is not a multiple of \(type.name)'s block size \(type.blockSize)")
            }
            let offsetAt = r.offset
            let offset = try r.read(UInt64.self, "the offset of '\(name)'")
            guard offset <= UInt64(file.count) else {
                throw file.malformed(offsetAt, "tensor '\(name)' data offset \(offset) points outside the \(file.count)-byte file")
            }
            guard Int(offset) % alignment == 0 else {
                throw file.malformed(offsetAt, "tensor '\(name)' data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            raws.append(Raw(name: name, ne: ne, type: type, offset: Int(offset), at: offsetAt, elements: elements,
                            bytes: elements / type.blockSize * type.bytesPerBlock))
            _ = at
        }

        let dataOffset = (r.offset + alignment - 1) / alignment * alignment
        guard dataOffset <= file.count || raws.isEmpty else {
            throw file.malformed(r.offset, "truncated: the data section would start at \(dataOffset), past the end of the \(file.count)-byte file")
        }
        self.dataOffset = dataOffset

        var infos: [GGUFTensorInfo] = []
        var byName: [String: Int] = [:]
        for raw in raws {
            let start = dataOffset + raw.offset
            guard start <= file.count, raw.bytes <= file.count - start else {
                throw file.malformed(start, "tensor '\(raw.name)' (\(raw.type.name), \(raw.bytes) bytes at data offset \(raw.offset), declared at byte \(raw.at)) runs past the end of the \(file.count)-byte file")
            }
            guard byName[raw.name] == nil else { throw file.malformed(raw.at, "duplicate tensor name '\(raw.name)'") }
            byName[raw.name] = infos.count
            infos.append(GGUFTensorInfo(name: raw.name, ne: raw.ne, type: raw.type, offset: raw.offset,
                                        fileOffset: start, byteCount: raw.bytes, elementCount: raw.elements))
        }
        // Tensors must not share bytes (as the safetensors reader requires): overlapping ranges would let
        // one tensor's data be read as another's, and writing kept blocks in place would corrupt both.
        let byStart = infos.filter { $0.byteCount > 0 }.sorted { $0.fileOffset < $1.fileOffset }
        for (a, b) in zip(byStart, byStart.dropFirst()) where a.fileOffset + a.byteCount > b.fileOffset {
            throw file.malformed(b.fileOffset, "tensor '\(b.name)' (data offset \(b.offset)) overlaps tensor '\(a.name)' "
                + "(data offset \(a.offset), \(a.byteCount) bytes)")
        }
        self.tensors = infos
        self.byName = byName
    }

    // MARK: Metadata parsing

    private static func readString(_ r: inout ByteReader, _ what: String) throws -> String {
        let at = r.offset
        let n = try r.read(UInt64.self, "the length of \(what)")
        guard n <= UInt64(r.remaining) else {
            throw r.file.malformed(at, "length \(n) of \(what) is absurd: only \(r.remaining) bytes left in the \(r.file.count)-byte file")
        }
        return try r.readString(length: Int(n), what)
    }

    /// Smallest encoded size of one value of a type (arrays: type + count).
    private static func minimumSize(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12, 8: return 8
        case 9: return 12
        default: return nil
        }
    }

    private static func readValue(_ r: inout ByteReader, type: UInt32, typeAt: Int, key: String, depth: Int) throws -> GGUFValue {
        let what = "the value of '\(key)'"
        switch type {
        case 0: return .uint8(try r.read(UInt8.self, what))
        case 1: return .int8(try r.read(Int8.self, what))
        case 2: return .uint16(try r.read(UInt16.self, what))
        case 3: return .int16(try r.read(Int16.self, what))
        case 4: return .uint32(try r.read(UInt32.self, what))
        case 5: return .int32(try r.read(Int32.self, what))
        case 6: return .float32(try r.readFloat(what))
        case 7:
            let at = r.offset
            let b = try r.read(UInt8.self, what)
            guard b <= 1 else { throw r.file.malformed(at, "bool '\(key)' has byte value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try readString(&r, what))
        case 10: return .uint64(try r.read(UInt64.self, what))
        case 11: return .int64(try r.read(Int64.self, what))
        case 12: return .float64(try r.readDouble(what))
        case 9:
            guard depth < maxArrayDepth else { throw r.file.malformed(typeAt, "arrays in '\(key)' nest deeper than \(maxArrayDepth)") }
            let elemTypeAt = r.offset
            let elemType = try r.read(UInt32.self, "the element type of '\(key)'")
            guard let minSize = minimumSize(elemType) else {
                throw r.file.malformed(elemTypeAt, "array '\(key)' has unknown element type \(elemType)")
            }
            let countAt = r.offset
            let count = try r.read(UInt64.self, "the length of '\(key)'")
            guard count <= UInt64(r.remaining / minSize) else {
                throw r.file.malformed(countAt, "array '\(key)' length \(count) is absurd: only \(r.remaining) bytes left in the \(r.file.count)-byte file")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                items.append(try readValue(&r, type: elemType, typeAt: elemTypeAt, key: key, depth: depth + 1))
            }
            return .array(items)
        default:
            throw r.file.malformed(typeAt, "metadata '\(key)' has unknown value type \(type)")
        }
    }

    // MARK: Tensor access

    public func tensor(named name: String) -> GGUFTensorInfo? { byName[name].map { tensors[$0] } }

    private func info(_ name: String) throws -> GGUFTensorInfo {
        guard let t = tensor(named: name) else { throw ModelError.missingTensor(path: path, name: name, expectedShape: []) }
        return t
    }

    /// The tensor's stored bytes (blocks for quantized types), valid while this object is alive.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let t = try info(name)
        return file.slice(t.fileOffset, t.byteCount)
    }

    /// The tensor dequantized to fp32, in PyTorch row-major order (`shape`).
    /// Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K.
    public func floats(_ name: String) throws -> [Float] {
        let t = try info(name)
        guard t.type.canDequantize else {
            throw ModelError.unsupportedTensorType(path: path, name: name, type: t.type.name)
        }
        if t.elementCount == 0 { return [] }
        let src = file.slice(t.fileOffset, t.byteCount)
        return [Float](unsafeUninitializedCapacity: t.elementCount) { buf, initialized in
            GGUFDequantize.row(t.type, src.baseAddress!, count: t.elementCount, into: buf.baseAddress!)
            initialized = t.elementCount
        }
    }
}
