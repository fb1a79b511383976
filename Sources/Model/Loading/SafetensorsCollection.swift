import Foundation

/// The safetensors weights of an HF checkpoint: one `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (`{"weight_map": {tensor name: shard file name}}`).
public final class SafetensorsCollection: @unchecked Sendable {
    public let files: [SafetensorsFile]
    private let owner: [String: Int]

    /// All tensor names across the files.
    public var names: [String] { files.flatMap(\.names) }

    public init(files: [SafetensorsFile]) throws {
        var owner: [String: Int] = [:]
        for (i, f) in files.enumerated() {
            for n in f.names {
                if let j = owner[n] {
                    throw ModelError.malformedFile(path: f.path, offset: nil,
                                                   reason: "tensor '\(n)' is also in \(files[j].path)")
                }
                owner[n] = i
            }
        }
        self.files = files
        self.owner = owner
    }

    /// Opens a checkpoint directory: `model.safetensors.index.json` when present, else `model.safetensors`.
    public convenience init(directory: URL) throws {
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        if FileManager.default.fileExists(atPath: index.path) {
            try self.init(index: index)
        } else {
            let single = directory.appendingPathComponent("model.safetensors")
            guard FileManager.default.fileExists(atPath: single.path) else {
                throw ModelError.fileNotFound(path: single.path)
            }
            try self.init(files: [SafetensorsFile(single)])
        }
    }

    /// Opens the shards an index file names; every tensor the index maps must be in its shard.
    public convenience init(index: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: index) } catch { throw ModelError.fileNotFound(path: index.path) }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.malformedFile(path: index.path, offset: nil, reason: "not a JSON object")
        }
        guard let map = json["weight_map"] as? [String: Any] else {
            throw ModelError.missingConfigField(path: index.path, field: "weight_map")
        }
        var shardNames: [String] = []
        var wanted: [String: String] = [:]
        for (tensor, v) in map {
            guard let shard = v as? String, !shard.contains("/"), !shard.hasPrefix(".") else {
                throw ModelError.unsupportedConfig(path: index.path, field: "weight_map.\(tensor)", reason: "shard must be a file name in the same directory")
            }
            wanted[tensor] = shard
            if !shardNames.contains(shard) { shardNames.append(shard) }
        }
        shardNames.sort()
        let dir = index.deletingLastPathComponent()
        let files = try shardNames.map { try SafetensorsFile(dir.appendingPathComponent($0)) }
        try self.init(files: files)
        for (tensor, shard) in wanted where self.file(for: tensor)?.url.lastPathComponent != shard {
            throw ModelError.missingTensor(path: dir.appendingPathComponent(shard).path, name: tensor, expectedShape: [])
        }
    }

    /// The file holding `name`.
    public func file(for name: String) -> SafetensorsFile? { owner[name].map { files[$0] } }

    public func contains(_ name: String) -> Bool { owner[name] != nil }

    public func info(_ name: String) -> (dtype: String, shape: [Int])? { file(for: name)?.info(name) }

    /// A path naming where the tensor was looked for (for errors): its file, else the first file.
    public func path(for name: String) -> String {
        file(for: name)?.path ?? files.first?.path ?? "(no safetensors files)"
    }

    public func floats(_ name: String) throws -> [Float] {
        guard let f = file(for: name) else { throw ModelError.missingTensor(path: path(for: name), name: name, expectedShape: []) }
        return try f.floats(name)
    }

    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let f = file(for: name) else { throw ModelError.missingTensor(path: path(for: name), name: name, expectedShape: []) }
        return try f.rawBytes(name)
    }
}
