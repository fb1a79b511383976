import Diagnostics
import Foundation
import Model
import Registry
import Training

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
        /// What `PEFTConfigFile` (the parser adapter loading uses too) made of the file.
        public let lora: LoRAConfig
        public var rank: Int { lora.rank }
        public var alpha: Double { Double(lora.alpha) }
        public var targetModules: [String] { lora.targets.map(\.rawValue).sorted() }
        /// The whole file, stored with the version.
        public let json: JSONValue
    }

    /// Parses adapter_config.json with `PEFTConfigFile` (one parser for import and loading):
    /// errors name the file and the field.
    public static func readConfig(_ url: URL) throws -> LoraConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ModelError.malformedFile(path: url.path, offset: nil, reason: "no adapter_config.json (is this a PEFT adapter directory?)")
        }
        let lora = try PEFTConfigFile.parse(data, path: url.path)
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch {
            throw ModelError.malformedFile(path: url.path, offset: nil, reason: ErrorText.describe(error, decoding: data))
        }
        return LoraConfig(lora: lora, json: json)
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
            let r = config.lora.rank(layer: layer, module: LinearModule(rawValue: module)!)
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
        // layers_to_transform is refused by the parser, so every layer carries every targeted module.
        for layer in 0..<layers {
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
