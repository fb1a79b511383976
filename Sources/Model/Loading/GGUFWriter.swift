import Foundation
import Quantization

/// Writes GGUF v3 files (the layout `GGUFFile` reads; ggml docs/gguf.md): magic, version 3,
/// tensor and key/value counts (u64), key/values (u64-length string key, u32 type, value),
/// tensor infos (name, u32 n_dims, u64 ne[], u32 ggml type, u64 offset into the data section),
/// padding to `general.alignment` (32), then each tensor's data, each padded to the alignment.
/// The file is written under a temporary name beside the destination and renamed into place.
public struct GGUFWriter {
    public struct Tensor {
        public var name: String
        /// ggml's `ne`: the fastest-varying dimension first (PyTorch shape reversed).
        public var ne: [Int]
        public var type: GGMLType
        public var bytes: Data
    }

    public private(set) var metadata: [(String, GGUFValue)] = []
    public private(set) var tensors: [Tensor] = []
    public let alignment = GGUFFile.defaultAlignment

    public init() {}

    /// Sets a key (a key set twice keeps its first position and the last value).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
    }

    /// Adds an fp32 tensor given in PyTorch order (`shape`, row-major `values`), stored as
    /// F32 or F16 (round to nearest even, as numpy's cast).
    public mutating func add(_ name: String, shape: [Int], values: [Float], type: GGMLType = .f32) throws {
        guard shape.reduce(1, *) == values.count, !shape.isEmpty, shape.count <= GGUFFile.maxDims else {
            throw ModelError.invalidArgument("GGUF tensor '\(name)': \(values.count) values for shape \(shape)")
        }
        guard !tensors.contains(where: { $0.name == name }) else {
            throw ModelError.invalidArgument("GGUF tensor '\(name)' added twice")
        }
        var data = Data(capacity: values.count * 4)
        switch type {
        case .f32: for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        case .f16: for v in values { withUnsafeBytes(of: Half.fromFloat(v).littleEndian) { data.append(contentsOf: $0) } }
        case .bf16: for v in values { withUnsafeBytes(of: Self.bf16(v).littleEndian) { data.append(contentsOf: $0) } }
        default: throw ModelError.invalidArgument("GGUF tensor '\(name)': writing \(type.name) is not supported (F32, F16, BF16)")
        }
        tensors.append(Tensor(name: name, ne: shape.reversed(), type: type, bytes: data))
    }

    /// Adds a tensor whose bytes are already in `type`'s block layout (e.g. a kept Q8_0 table).
    public mutating func addRaw(_ name: String, shape: [Int], type: GGMLType, bytes: Data) throws {
        let rowBlocks = (shape.last ?? 0) / type.blockSize
        guard shape.last.map({ $0 % type.blockSize == 0 }) == true,
              bytes.count == shape.dropLast().reduce(1, *) * rowBlocks * type.bytesPerBlock else {
            throw ModelError.invalidArgument("GGUF tensor '\(name)': \(bytes.count) bytes for shape \(shape) of \(type.name)")
        }
        tensors.append(Tensor(name: name, ne: shape.reversed(), type: type, bytes: bytes))
    }

    /// fp32 -> bf16 bits, round to nearest even (torch's cast); NaN stays NaN.
    static func bf16(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let b = f.bitPattern
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    public func data() -> Data {
        var out = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { let b = Array(s.utf8); u64(UInt64(b.count)); out.append(contentsOf: b) }
        func typeID(_ v: GGUFValue) -> UInt32 {
            switch v {
            case .uint8: return 0
            case .int8: return 1
            case .uint16: return 2
            case .int16: return 3
            case .uint32: return 4
            case .int32: return 5
            case .float32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .uint64: return 10
            case .int64: return 11
            case .float64: return 12
            }
        }
        func value(_ v: GGUFValue) {
            switch v {
            case let .uint8(x): out.append(x)
            case let .int8(x): out.append(UInt8(bitPattern: x))
            case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case let .int16(x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case let .uint32(x): u32(x)
            case let .int32(x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case let .float32(x): u32(x.bitPattern)
            case let .bool(x): out.append(x ? 1 : 0)
            case let .string(x): str(x)
            case let .array(items):
                // An empty array's element type is irrelevant to readers; ggml writes strings' id for them.
                u32(items.first.map(typeID) ?? 8)
                u64(UInt64(items.count))
                for i in items { value(i) }
            case let .uint64(x): u64(x)
            case let .int64(x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case let .float64(x): u64(x.bitPattern)
            }
        }
        func pad() { while out.count % alignment != 0 { out.append(0) } }

        var kv = metadata
        if !kv.contains(where: { $0.0 == "general.alignment" }) { kv.insert(("general.alignment", .uint32(UInt32(alignment))), at: 0) }
        u32(GGUFFile.magic)
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(kv.count))
        for (k, v) in kv { str(k); u32(typeID(v)); value(v) }
        var offset = 0
        for t in tensors {
            str(t.name)
            u32(UInt32(t.ne.count))
            for n in t.ne { u64(UInt64(n)) }
            u32(t.type.rawValue)
            u64(UInt64(offset))
            offset += (t.bytes.count + alignment - 1) / alignment * alignment
        }
        pad()
        for t in tensors { out.append(t.bytes); pad() }
        return out
    }

    /// Writes the file atomically (temporary name in the same directory, then rename).
    public func write(to url: URL) throws {
        try SafetensorsWriter.writeAtomically(data(), to: url)
    }
}
