import ChatTemplate
import Foundation
import Model

/// The one reader of PEFT's `adapter_config.json` (peft 0.21 `LoraConfig`): `lora import` and
/// registry validation (Service's `AdapterValidation`) and adapter loading (`PEFTAdapter.load`)
/// both call it, so what one accepts the other applies identically.
///
/// The JSON object is parsed keeping key order: `rank_pattern` / `alpha_pattern` are resolved
/// first-matching-key-wins in the file's order, as PEFT does (`PatternTable`).
/// What cannot be applied exactly is refused naming the field: DoRA, `modules_to_save`, biases,
/// `layers_to_transform` / `layers_pattern` (adapters on a subset of layers), regex
/// `target_modules`, embeddings or the LM head, `fan_in_fan_out`.
public enum PEFTConfigFile {
    public static let fileName = "adapter_config.json"

    /// Reads and parses `url`; errors name the file and the field.
    public static func read(_ url: URL) throws -> LoRAConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ModelError.fileNotFound(path: url.path)
        }
        return try parse(data, path: url.path)
    }

    public static func parse(_ data: Data, path: String) throws -> LoRAConfig {
        func bad(_ field: String, _ reason: String) -> ModelError { .unsupportedConfig(path: path, field: field, reason: reason) }
        let root: JinjaValue
        do { root = try JinjaValue(json: String(decoding: data, as: UTF8.self)) } catch {
            throw ModelError.malformedFile(path: path, offset: (error as? JinjaValue.JSONError)?.offset, reason: "not JSON: \(error)")
        }
        guard case .object(let j) = root else { throw ModelError.malformedFile(path: path, offset: nil, reason: "not a JSON object") }
        func isSet(_ field: String) -> Bool {
            switch j[field] {
            case nil, .none?: return false
            case .array(let a)?: return !a.isEmpty
            case .object(let o)?: return o.count > 0
            case .bool(let b)?: return b
            default: return true
            }
        }
        func number(_ v: JinjaValue?) -> Double? {
            switch v {
            case .int(let i)?: return Double(i)
            case .double(let d)?: return d
            default: return nil
            }
        }
        func integer(_ v: JinjaValue?) -> Int? {
            switch v {
            case .int(let i)?: return i
            case .double(let d)? where d.rounded() == d && abs(d) < 1e15: return Int(d)
            default: return nil
            }
        }

        guard let typeValue = j["peft_type"] else { throw ModelError.missingConfigField(path: path, field: "peft_type") }
        guard case .string(let type) = typeValue else { throw bad("peft_type", "must be a string") }
        guard type == "LORA" else { throw bad("peft_type", "'\(type)': only LORA adapters are supported") }
        guard j.keys.contains("r") else { throw ModelError.missingConfigField(path: path, field: "r") }
        guard let r = integer(j["r"]), r > 0 else { throw bad("r", "must be a positive integer") }
        guard j.keys.contains("lora_alpha") else { throw ModelError.missingConfigField(path: path, field: "lora_alpha") }
        guard let alpha = number(j["lora_alpha"]), alpha > 0, alpha.isFinite else { throw bad("lora_alpha", "must be a positive number") }

        if isSet("use_dora") { throw bad("use_dora", "DoRA is not supported") }
        if isSet("modules_to_save") { throw bad("modules_to_save", "full-weight modules are not supported") }
        if case .string(let b)? = j["bias"], b != "none" { throw bad("bias", "'\(b)'; only 'none' is supported") }
        // PEFT applies layers_to_transform only to the listed layers; neither loading nor the
        // registry builds adapters on a subset of layers, so both refuse it (null or [] = all layers).
        if isSet("layers_to_transform") { throw bad("layers_to_transform", "adapters on a subset of layers are not supported") }
        if isSet("layers_pattern") { throw bad("layers_pattern", "not supported") }
        if isSet("fan_in_fan_out") { throw bad("fan_in_fan_out", "true is not supported for Llama's linear layers") }
        if isSet("target_parameters") { throw bad("target_parameters", "not supported") }
        if isSet("trainable_token_indices") { throw bad("trainable_token_indices", "not supported") }
        if isSet("lora_bias") { throw bad("lora_bias", "LoRA biases are not supported") }
        for field in ["layer_replication", "exclude_modules", "use_qalora", "use_bdlora"] where isSet(field) {
            throw bad(field, "not supported")
        }

        var targets: [LinearModule] = []
        switch j["target_modules"] {
        case nil, .none?:
            throw ModelError.missingConfigField(path: path, field: "target_modules")
        case .string(let s)?:
            guard s == "all-linear" else { throw bad("target_modules", "the regex '\(s)' is not supported; list module names or \"all-linear\"") }
            targets = LinearModule.allCases
        case .array(let list)?:
            guard !list.isEmpty else { throw bad("target_modules", "must be a non-empty list of names") }
            for item in list {
                guard case .string(let name) = item else { throw bad("target_modules", "must be a list of module names") }
                // PEFT matches a listed name as the module's full name or its dotted suffix; a
                // suffix naming a layer (model.layers.3.self_attn.q_proj) would target a subset.
                let parts = name.split(separator: ".").map(String.init)
                let module = LinearModule(rawValue: parts.last ?? name)
                let prefixOK = parts.count == 1 || (parts.count == 2 && module.map { parts[0] == Self.block(of: $0) } == true)
                guard let module, prefixOK else {
                    let why = name.contains("embed") || name.hasSuffix("lm_head")
                        ? "LoRA on embeddings or the LM head is not supported"
                        : module != nil ? "a module path naming a layer subset is not supported; list module names"
                        : "unknown module; expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj"
                    throw bad("target_modules", "'\(name)': \(why)")
                }
                if !targets.contains(module) { targets.append(module) }
            }
        default:
            throw bad("target_modules", "must be a list of module names or \"all-linear\"")
        }

        var rankPattern = PatternTable<Int>()
        var alphaPattern = PatternTable<Float>()
        for (field, isRank) in [("rank_pattern", true), ("alpha_pattern", false)] {
            switch j[field] {
            case nil, .none?: continue
            case .object(let o)?:
                for (k, v) in o.pairs {
                    do { _ = try PatternTable<Int>.compile(k) } catch {
                        throw bad("\(field).\(k)", "not a regular expression PEFT could match: \(error)")
                    }
                    if isRank {
                        guard let n = integer(v), n > 0 else { throw bad("\(field).\(k)", "must map to a positive integer") }
                        rankPattern[k] = n
                    } else {
                        guard let a = number(v), a > 0, a.isFinite else { throw bad("\(field).\(k)", "must map to a positive number") }
                        alphaPattern[k] = Float(a)
                    }
                }
            default:
                throw bad(field, "must be an object of module patterns")
            }
        }
        var dropout: Float = 0
        if isSet("lora_dropout") {
            guard let v = number(j["lora_dropout"]), v >= 0, v < 1 else { throw bad("lora_dropout", "must be a number in [0, 1)") }
            dropout = Float(v)
        }
        var rslora = false
        switch j["use_rslora"] {
        case nil, .none?: break
        case .bool(let b)?: rslora = b
        default: throw bad("use_rslora", "must be true or false")
        }
        let c = LoRAConfig(rank: r, alpha: Float(alpha), dropout: dropout, targets: LinearModule.allCases.filter(targets.contains),
                           useRSLoRA: rslora, rankPattern: rankPattern, alphaPattern: alphaPattern)
        do { try c.validate() } catch { throw bad("r", "\(error)") }
        return c
    }

    static func block(of m: LinearModule) -> String {
        switch m {
        case .q, .k, .v, .o: return "self_attn"
        case .gate, .up, .down: return "mlp"
        }
    }

    /// adapter_config.json text for `config`: top-level keys sorted, pattern keys in the table's
    /// order (their order decides which key wins), numbers through their shortest decimal form.
    public static func encode(_ c: LoRAConfig, baseName: String) throws -> Data {
        func scalar(_ v: Any) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed]), as: UTF8.self)
        }
        func pattern<V>(_ t: PatternTable<V>, _ f: (V) -> Any) throws -> String {
            if t.isEmpty { return "{}" }
            return "{" + (try t.entries.map { try scalar($0.key) + ": " + scalar(f($0.value)) }).joined(separator: ", ") + "}"
        }
        // Through the shortest decimal string, so 0.05 is written as 0.05, not 0.0500000007.
        let fields: [String: String] = [
            "peft_type": try scalar("LORA"),
            "task_type": try scalar("CAUSAL_LM"),
            "r": String(c.rank),
            "lora_alpha": try scalar(Double("\(c.alpha)")!),
            "lora_dropout": try scalar(Double("\(c.dropout)")!),
            "target_modules": try scalar(c.targets.map(\.rawValue).sorted()),
            "bias": try scalar("none"),
            "use_rslora": c.useRSLoRA ? "true" : "false",
            "use_dora": "false",
            "fan_in_fan_out": "false",
            "inference_mode": "true",
            "init_lora_weights": "true",
            "modules_to_save": "null",
            "layers_to_transform": "null",
            "rank_pattern": try pattern(c.rankPattern) { $0 },
            "alpha_pattern": try pattern(c.alphaPattern) { Double("\($0)")! },
            "base_model_name_or_path": try scalar(baseName),
        ]
        let body = fields.keys.sorted().map { "  \"\($0)\": \(fields[$0]!)" }.joined(separator: ",\n")
        return Data(("{\n" + body + "\n}\n").utf8)
    }
}
