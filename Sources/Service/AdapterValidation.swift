import Foundation
import Model
import Registry

/// Checks a PEFT LoRA adapter directory before it is registered: adapter_config.json
/// (peft_type LORA, r, lora_alpha, target_modules) and the tensors of
/// adapter_model.safetensors against the base model's shape. Key names and shapes follow
/// PEFT (REFERENCE.md): `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_A.weight`
/// is [r, in], `lora_B.weight` is [out, r].
public enum AdapterValidation {
    public static let attentionModules = ["q_proj", "k_proj", "v_proj", "o_proj"]
    public static let mlpModules = ["gate_proj", "up_proj", "down_proj"]

    /// The parsed essentials of adapter_config.json.
    public struct LoraConfig: Sendable, Equatable {
        public let rank: Int
        public let alpha: Double
        public let targetModules: [String]
        public let rankPattern: [String: Int]
        /// The whole file, stored with the version.
        public let json: JSONValue
    }

    public static func readConfig(_ url: URL) throws -> LoraConfig {
        func bad(_ field: String, _ reason: String) -> ModelError {
            .unsupportedConfig(path: url.path, field: field, reason: reason)
        }
        let json: JSONValue
        do { json = try JSONValue.parse(try Data(contentsOf: url)) } catch {
            throw ModelError.malformedFile(path: url.path, offset: nil, reason: "not JSON: \(error)")
        }
        guard json.objectValue != nil else { throw ModelError.malformedFile(path: url.path, offset: nil, reason: "not a JSON object") }
        guard let peft = json["peft_type"]?.stringValue else { throw ModelError.missingConfigField(path: url.path, field: "peft_type") }
        guard peft == "LORA" else { throw bad("peft_type", "'\(peft)': only LORA adapters are supported") }
        guard let rv = json["r"] else { throw ModelError.missingConfigField(path: url.path, field: "r") }
        guard let r = rv.intValue, r > 0 else { throw bad("r", "must be a positive integer") }
        guard let av = json["lora_alpha"] else { throw ModelError.missingConfigField(path: url.path, field: "lora_alpha") }
        guard let alpha = av.doubleValue, alpha > 0 else { throw bad("lora_alpha", "must be a positive number") }
        guard let tm = json["target_modules"] else { throw ModelError.missingConfigField(path: url.path, field: "target_modules") }
        let all = attentionModules + mlpModules
        var targets: [String]
        if let s = tm.stringValue {
            guard s == "all-linear" else { throw bad("target_modules", "'\(s)': give a list of module names or \"all-linear\"") }
            targets = all
        } else if let a = tm.arrayValue {
            targets = a.compactMap(\.stringValue)
            guard targets.count == a.count, !targets.isEmpty else { throw bad("target_modules", "must be a non-empty list of names") }
            for t in targets where !all.contains(t) {
                throw bad("target_modules", "'\(t)' is not a linear layer of a Llama block (\(all.joined(separator: ", ")))")
            }
        } else {
            throw bad("target_modules", "must be a list of module names or \"all-linear\"")
        }
        targets = Array(Set(targets)).sorted()
        var rankPattern: [String: Int] = [:]
        for (k, v) in json["rank_pattern"]?.objectValue ?? [:] {
            guard let n = v.intValue, n > 0 else { throw bad("rank_pattern", "'\(k)' must map to a positive integer") }
            rankPattern[k] = n
        }
        return LoraConfig(rank: r, alpha: alpha, targetModules: targets, rankPattern: rankPattern, json: json)
    }

    /// Input and output width of a block's linear layer (HF [out, in] layout).
    static func dims(_ module: String, _ c: LlamaConfig) -> (inDim: Int, outDim: Int)? {
        switch module {
        case "q_proj": return (c.hiddenSize, c.qDim)
        case "k_proj", "v_proj": return (c.hiddenSize, c.kvDim)
        case "o_proj": return (c.qDim, c.hiddenSize)
        case "gate_proj", "up_proj": return (c.hiddenSize, c.intermediateSize)
        case "down_proj": return (c.intermediateSize, c.hiddenSize)
        default: return nil
        }
    }

    /// Checks every tensor name and shape; every targeted module of every layer must have both
    /// factors. `base` is nil when the base model's shape is unknown: then only names and the
    /// rank are checked.
    public static func checkTensors(_ file: SafetensorsFile, config: LoraConfig, base: LlamaConfig?,
                                    path: String) throws {
        var seen = Set<String>()
        for name in file.names {
            guard let t = file.info(name) else { continue }
            // base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight
            let parts = name.split(separator: ".").map(String.init)
            guard parts.count == 9, parts[0] == "base_model", parts[1] == "model", parts[2] == "model", parts[3] == "layers",
                  let layer = Int(parts[4]), layer >= 0, parts[8] == "weight",
                  parts[7] == "lora_A" || parts[7] == "lora_B" else {
                throw ModelError.unsupportedConfig(path: path, field: name, reason: "not a LoRA factor of a Llama block linear layer")
            }
            let module = parts[6]
            let group = attentionModules.contains(module) ? "self_attn" : (mlpModules.contains(module) ? "mlp" : "")
            guard parts[5] == group, config.targetModules.contains(module) else {
                throw ModelError.unsupportedConfig(path: path, field: name,
                                                   reason: "module \(parts[5]).\(module) is not in target_modules \(config.targetModules)")
            }
            guard t.shape.count == 2 else {
                throw ModelError.wrongShape(path: path, name: name, expected: [], actual: t.shape)
            }
            let r = config.rankPattern.first { name.contains(".\($0.key).") || name.contains($0.key + ".lora_") }?.value ?? config.rank
            var expected: [Int]
            if let base {
                guard layer < base.numLayers else {
                    throw ModelError.unsupportedConfig(path: path, field: name,
                        reason: "layer \(layer) does not exist: the base model has \(base.numLayers) layers; hint: maybe wrong base model?")
                }
                let d = dims(module, base)!
                expected = parts[7] == "lora_A" ? [r, d.inDim] : [d.outDim, r]
            } else {
                expected = parts[7] == "lora_A" ? [r, t.shape[1]] : [t.shape[0], r]
            }
            guard t.shape == expected else {
                var e = ModelError.wrongShape(path: path, name: name, expected: expected, actual: t.shape)
                if base != nil {
                    e = .unsupportedConfig(path: path, field: name,
                        reason: "shape \(t.shape), expected \(expected) for this base model (r \(r)); hint: maybe wrong base model?")
                }
                throw e
            }
            // An adapter trained into NaN/Inf would make every output of the model NaN.
            let values = try file.floats(name)
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                throw ModelError.malformedFile(path: path, offset: nil, reason: "tensor '\(name)' holds a non-finite value "
                    + "(\(values[i]) at [\(i / t.shape[1]), \(i % t.shape[1])]); a NaN/Inf adapter cannot be registered")
            }
            seen.insert(name)
        }
        let layers = base?.numLayers ?? (seen.compactMap { Int($0.split(separator: ".")[4]) }.max().map { $0 + 1 } ?? 0)
        guard layers > 0 else {
            throw ModelError.malformedFile(path: path, offset: nil, reason: "no LoRA tensors")
        }
        // PEFT's layers_to_transform (an int or a list) limits which layers carry factors.
        var required = Array(0..<layers)
        if let l = config.json["layers_to_transform"], l != .null {
            required = l.intValue.map { [$0] } ?? l.arrayValue?.compactMap(\.intValue) ?? required
        }
        for layer in required {
            for module in config.targetModules {
                let group = attentionModules.contains(module) ? "self_attn" : "mlp"
                for f in ["lora_A", "lora_B"] {
                    let name = "base_model.model.model.layers.\(layer).\(group).\(module).\(f).weight"
                    if !seen.contains(name) {
                        throw ModelError.missingTensor(path: path, name: name, expectedShape: [])
                    }
                }
            }
        }
    }
}
