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
        let c = adapter.config
        var json: [String: Any] = [
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": c.rank,
            // Through the shortest decimal string, so 0.05 is written as 0.05, not 0.0500000007.
            "lora_alpha": Double("\(c.alpha)")!,
            "lora_dropout": Double("\(c.dropout)")!,
            "target_modules": c.targets.map(\.rawValue).sorted(),
            "bias": "none",
            "use_rslora": c.useRSLoRA,
            "use_dora": false,
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": NSNull(),
            "layers_to_transform": NSNull(),
            "rank_pattern": c.rankPattern,
            "alpha_pattern": c.alphaPattern.mapValues { Double("\($0)")! },
            "base_model_name_or_path": base.name,
        ]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: dir.appendingPathComponent(configFile), options: .atomic)
    }

    // MARK: Reading

    public struct Loaded {
        public var adapter: LoRAAdapter
        public var base: BaseIdentity?
    }

    /// Reads an adapter directory and checks it against the base model's shapes. What this
    /// code cannot apply exactly (DoRA, modules_to_save, embeddings, biases, layer subsets,
    /// regex targets) is refused naming the field.
    public static func load(from dir: URL, base: LlamaConfig) throws -> Loaded {
        let configURL = dir.appendingPathComponent(configFile)
        let path = configURL.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.invalidAdapter(path: dir.path, reason: "no \(configFile) (is this a PEFT adapter directory?)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data), let json = obj as? [String: Any] else {
            throw TrainingError.invalidAdapter(path: path, reason: "not a JSON object")
        }
        let config = try parseConfig(json, path: path)
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

    static func parseConfig(_ j: [String: Any], path: String) throws -> LoRAConfig {
        func refuse(_ field: String, _ reason: String) -> TrainingError { .invalidAdapter(path: path, reason: "unsupported field '\(field)': \(reason)") }
        guard let type = j["peft_type"] as? String else { throw TrainingError.invalidAdapter(path: path, reason: "missing field 'peft_type'") }
        guard type == "LORA" else { throw refuse("peft_type", "'\(type)'; only LORA adapters are supported") }
        guard let r = (j["r"] as? NSNumber)?.intValue else { throw TrainingError.invalidAdapter(path: path, reason: "missing field 'r'") }
        guard let alpha = (j["lora_alpha"] as? NSNumber)?.floatValue else { throw TrainingError.invalidAdapter(path: path, reason: "missing field 'lora_alpha'") }
        if let dora = j["use_dora"] as? Bool, dora { throw refuse("use_dora", "DoRA is not supported") }
        if let m = j["modules_to_save"], !(m is NSNull), !((m as? [Any])?.isEmpty ?? false) { throw refuse("modules_to_save", "full-weight modules are not supported") }
        if let b = j["bias"] as? String, b != "none" { throw refuse("bias", "'\(b)'; only 'none' is supported") }
        if let l = j["layers_to_transform"], !(l is NSNull) { throw refuse("layers_to_transform", "adapters on a subset of layers are not supported") }
        if let f = j["fan_in_fan_out"] as? Bool, f { throw refuse("fan_in_fan_out", "true is not supported for Llama's linear layers") }
        if let t = j["target_parameters"], !(t is NSNull), !((t as? [Any])?.isEmpty ?? false) { throw refuse("target_parameters", "not supported") }
        if let t = j["trainable_token_indices"], !(t is NSNull) { throw refuse("trainable_token_indices", "not supported") }
        if let b = j["lora_bias"] as? Bool, b { throw refuse("lora_bias", "LoRA biases are not supported") }
        for field in ["layer_replication", "exclude_modules", "layers_pattern"] {
            if let v = j[field], !(v is NSNull) { throw refuse(field, "not supported") }
        }
        for field in ["use_qalora", "use_bdlora"] {
            if let v = j[field] as? Bool, v { throw refuse(field, "not supported") }
        }
        var targets: [LinearModule] = []
        if let s = j["target_modules"] as? String {
            guard s == "all-linear" else { throw refuse("target_modules", "the regex '\(s)' is not supported; list module names") }
            targets = LinearModule.allCases
        } else if let list = j["target_modules"] as? [String] {
            for name in list {
                guard let m = LinearModule(rawValue: name.split(separator: ".").last.map(String.init) ?? name) else {
                    let why = name.contains("embed") || name == "lm_head" ? "LoRA on embeddings or the LM head is not supported" : "unknown module; expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj"
                    throw refuse("target_modules", "'\(name)': \(why)")
                }
                if !targets.contains(m) { targets.append(m) }
            }
        } else {
            throw TrainingError.invalidAdapter(path: path, reason: "missing field 'target_modules'")
        }
        var rankPattern: [String: Int] = [:], alphaPattern: [String: Float] = [:]
        for (k, v) in (j["rank_pattern"] as? [String: Any]) ?? [:] {
            guard let n = (v as? NSNumber)?.intValue else { throw refuse("rank_pattern.\(k)", "not a number") }
            rankPattern[k] = n
        }
        for (k, v) in (j["alpha_pattern"] as? [String: Any]) ?? [:] {
            guard let n = (v as? NSNumber)?.floatValue else { throw refuse("alpha_pattern.\(k)", "not a number") }
            alphaPattern[k] = n
        }
        let c = LoRAConfig(rank: r, alpha: alpha, dropout: (j["lora_dropout"] as? NSNumber)?.floatValue ?? 0,
                           targets: LinearModule.allCases.filter(targets.contains), useRSLoRA: (j["use_rslora"] as? Bool) ?? false,
                           rankPattern: rankPattern, alphaPattern: alphaPattern)
        do { try c.validate() } catch { throw TrainingError.invalidAdapter(path: path, reason: "\(error)") }
        return c
    }
}
