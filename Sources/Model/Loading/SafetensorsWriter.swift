import Foundation

/// Writes `.safetensors` files (the layout `SafetensorsFile` reads). The file is written under a
/// temporary name in the destination's directory and renamed into place, so a reader never sees
/// half a file.
public enum SafetensorsWriter {
    public struct Tensor {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var bytes: Data

        public init(name: String, dtype: String, shape: [Int], bytes: Data) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.bytes = bytes
        }

        /// An F32 tensor from floats (stored little-endian).
        public init(name: String, shape: [Int], floats: [Float]) {
            var data = Data(capacity: floats.count * 4)
            for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            self.init(name: name, dtype: "F32", shape: shape, bytes: data)
        }
    }

    public static func write(tensors: [(name: String, dtype: String, shape: [Int], bytes: Data)],
                             metadata: [String: String]? = nil, to url: URL) throws {
        try write(tensors.map { Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: $0.bytes) },
                  metadata: metadata, to: url)
    }

    public static func write(_ tensors: [Tensor], metadata: [String: String]? = nil, to url: URL) throws {
        var header: [String: Any] = [:]
        var offset = 0
        var seen = Set<String>()
        for t in tensors {
            guard t.name != "__metadata__", seen.insert(t.name).inserted else {
                throw ModelError.invalidArgument("safetensors: duplicate or reserved tensor name '\(t.name)'")
            }
            guard let size = SafetensorsFile.dtypeSizes[t.dtype] else {
                throw ModelError.invalidArgument("safetensors: tensor '\(t.name)' has unknown dtype \(t.dtype)")
            }
            let numel = t.shape.reduce(1, *)
            guard t.shape.allSatisfy({ $0 >= 0 }), numel * size == t.bytes.count else {
                throw ModelError.invalidArgument("safetensors: tensor '\(t.name)' has \(t.bytes.count) bytes for shape \(t.shape) of \(t.dtype)")
            }
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]] as [String: Any]
            offset += t.bytes.count
        }
        if let metadata { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces to a multiple of 8 so the data section is aligned, as the
        // safetensors library does.
        while json.count % 8 != 0 { json.append(0x20) }

        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors { out.append(t.bytes) }
        try writeAtomically(out, to: url)
    }

    /// Writes `data` to a temporary file beside `url`, then renames it over `url`.
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try data.write(to: tmp)
        } catch {
            throw ModelError.invalidArgument("cannot write \(tmp.path): \(error.localizedDescription)")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw ModelError.invalidArgument("cannot rename \(tmp.path) to \(url.path): \(reason)")
        }
    }
}
