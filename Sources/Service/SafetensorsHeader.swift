import Foundation
import Registry

/// The header of a .safetensors file: tensor names, dtypes and shapes (8-byte little-endian
/// header length, then that many bytes of JSON; format by huggingface/safetensors). Only the
/// header is read. (The Model target's SafetensorsFile may replace this once on main.)
public struct SafetensorsHeader: Sendable {
    public struct Tensor: Sendable, Equatable {
        public let dtype: String
        public let shape: [Int]
    }

    public let tensors: [String: Tensor]

    static let dtypeSizes: [String: Int] = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8]

    public static func read(_ url: URL) throws -> SafetensorsHeader {
        func bad(_ offset: Int?, _ reason: String) -> RegistryError {
            .invalidArtifact(path: url.path, reason: (offset.map { "byte offset \($0): " } ?? "") + reason)
        }
        let h = try FileHandle(forReadingFrom: url)
        defer { try? h.close() }
        let fileSize = Int(h.seekToEndOfFile())
        h.seek(toFileOffset: 0)
        let lenBytes = [UInt8](h.readData(ofLength: 8))
        guard lenBytes.count == 8 else { throw bad(0, "shorter than the 8-byte header length") }
        let n = lenBytes.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard n > 0, n <= 100 << 20, 8 + n <= fileSize else { throw bad(0, "header length \(n) does not fit a \(fileSize)-byte file") }
        let json: JSONValue
        do { json = try JSONValue.parse(h.readData(ofLength: n)) } catch { throw bad(8, "header is not JSON") }
        guard let obj = json.objectValue else { throw bad(8, "header is not a JSON object") }
        var tensors: [String: Tensor] = [:]
        let dataSize = fileSize - 8 - n
        for (name, v) in obj where name != "__metadata__" {
            guard let dtype = v["dtype"]?.stringValue, let shape = v["shape"]?.arrayValue?.compactMap(\.intValue),
                  let offs = v["data_offsets"]?.arrayValue?.compactMap(\.intValue), offs.count == 2 else {
                throw bad(8, "tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let esize = dtypeSizes[dtype] else { throw bad(8, "tensor '\(name)' has unsupported dtype \(dtype)") }
            let count = shape.reduce(1, *)
            guard offs[0] >= 0, offs[1] >= offs[0], offs[1] <= dataSize, offs[1] - offs[0] == count * esize else {
                throw bad(8, "tensor '\(name)' data_offsets \(offs) do not match shape \(shape) \(dtype) in \(dataSize) data bytes")
            }
            tensors[name] = Tensor(dtype: dtype, shape: shape)
        }
        return SafetensorsHeader(tensors: tensors)
    }
}
