import Foundation
import Model

/// PEFT's on-disk LoRA format: `adapter_config.json` + `adapter_model.safetensors`, with keys
/// `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight`
/// (A [R, K], B [N, R]), as peft 0.21's `save_pretrained` writes and `from_pretrained` reads.
public enum PEFTAdapter {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"

    /// Which base model an adapter was trained on.
    public struct BaseIdentity: Sendable, Equatable {
        public var name: String
        /// sha256 of the base model's weight file(s), when known.
        public var sha256: String?
        public init(name: String, sha256: String?) { self.name = name; self.sha256 = sha256 }
    }

    static func key(_ p: LoRAPair, _ which: String) -> String {
        "base_model.model.\(LoRAConfig.modulePath(layer: p.layer, module: p.module)).lora_\(which).weight"
    }

    // MARK: Writing

    /// Writes the adapter into `dir` (created if needed); each file is written to a temporary
    /// name and renamed, so a reader never sees a half-written adapter file.
    public static func save(_ adapter: LoRAAdapter, base: BaseIdentity, to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var tensors: [SafetensorsWriter.Tensor] = []
        for p in adapter.pairs {
            tensors.append(SafetensorsWriter.Tensor(name: key(p, "A"), shape: [p.rank, p.inFeatures],
                                                    floats: Array(adapter.parameters[p.aOffset..<(p.aOffset + p.aCount)])))
            tensors.append(SafetensorsWriter.Tensor(name: key(p, "B"), shape: [p.outFeatures, p.rank],
                                                    floats: Array(adapter.parameters[p.bOffset..<(p.bOffset + p.bCount)])))
        }
        // The base's identity rides in the safetensors metadata, which PEFT and transformers ignore
        // (an unknown key in adapter_config.json makes PEFT warn about its own version).
        var metadata = ["format": "pt", "base_model_name": base.name]
        if let sha = base.sha256 { metadata["base_model_sha256"] = sha }
        try SafetensorsWriter.write(tensors, metadata: metadata, to: dir.appendingPathComponent(weightsFile))
        let data = try PEFTConfigFile.encode(adapter.config, baseName: base.name)
        try data.write(to: dir.appendingPathComponent(configFile), options: .atomic)
    }

    // MARK: Reading

    public struct Loaded {
        public var adapter: LoRAAdapter
        public var base: BaseIdentity?
    }

    /// Reads an adapter directory and checks it against the base model's shapes. The config goes
    /// through `PEFTConfigFile`, the parser registry validation uses too: what this code cannot
    /// apply exactly (DoRA, modules_to_save, embeddings, biases, layer subsets, regex targets) is
    /// refused naming the field.
    public static func load(from dir: URL, base: LlamaConfig) throws -> Loaded {
        let configURL = dir.appendingPathComponent(configFile)
        let path = configURL.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.invalidAdapter(path: dir.path, reason: "no \(configFile) (is this a PEFT adapter directory?)")
        }
        let config = try PEFTConfigFile.parse(data, path: path)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        let weightsURL = dir.appendingPathComponent(weightsFile)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw TrainingError.invalidAdapter(path: dir.path, reason: "no \(weightsFile)")
        }
        let file = try SafetensorsFile(weightsURL)
        let adapter = LoRAAdapter(config: config, base: base)
        var expected = Set<String>()
        for p in adapter.pairs {
            for (which, shape, offset) in [("A", [p.rank, p.inFeatures], p.aOffset), ("B", [p.outFeatures, p.rank], p.bOffset)] {
                let name = key(p, which)
                expected.insert(name)
                guard let info = file.info(name) else {
                    throw TrainingError.invalidAdapter(path: weightsURL.path, reason: "missing tensor '\(name)' (expected shape \(shape))")
                }
                guard info.shape == shape else {
                    throw TrainingError.shapeMismatch(path: weightsURL.path, tensor: name, expected: shape, actual: info.shape)
                }
                let values = try file.floats(name)
                adapter.parameters.replaceSubrange(offset..<(offset + values.count), with: values)
            }
        }
        for name in file.names where !expected.contains(name) {
            throw TrainingError.invalidAdapter(path: weightsURL.path, reason: "unexpected tensor '\(name)' (layer or module not in this base model or not targeted by the config)")
        }
        var identity: BaseIdentity?
        if let name = file.metadata["base_model_name"] ?? json["base_model_name_or_path"] as? String {
            identity = BaseIdentity(name: name, sha256: file.metadata["base_model_sha256"])
        }
        return Loaded(adapter: adapter, base: identity)
    }
}
