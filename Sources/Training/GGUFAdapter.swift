import Foundation
import Model
import Quantization

/// LoRA adapters in the GGUF layout llama.cpp reads (`llama-adapter.cpp`) and its
/// `convert_lora_to_gguf.py` writes: `general.type = adapter`, `adapter.type = lora`,
/// `adapter.lora.alpha` (f32), `general.architecture` of the base, and per adapted linear layer
/// `blk.{i}.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight.lora_a` (A, PyTorch
/// shape [R, K], ggml ne [K, R]) and `.lora_b` (B, [N, R], ne [R, N]).
///
/// llama.cpp multiplies every pair by `alpha / R` (R = that pair's rank, from lora_a's shape), with
/// one alpha for the file; our scaling (rsLoRA, `rank_pattern`, `alpha_pattern`) is folded into
/// B so that llama.cpp's product equals ours. For arch `llama` the base's q/k rows are permuted by
/// llama.cpp's converter (`LlamaModel.permute`); the converter permutes lora_b's rows of attn_q and
/// attn_k the same way, and so does this writer (the reader undoes it).
public enum GGUFAdapter {
    public static let fileName = "adapter.gguf"

    /// llama.cpp's tensor base name of a module (`gguf` constants.py TENSOR_NAMES, arch llama).
    public static func tensorName(layer: Int, module: LinearModule) -> String {
        let n: String
        switch module {
        case .q: n = "attn_q"
        case .k: n = "attn_k"
        case .v: n = "attn_v"
        case .o: n = "attn_output"
        case .gate: n = "ffn_gate"
        case .up: n = "ffn_up"
        case .down: n = "ffn_down"
        }
        return "blk.\(layer).\(n).weight"
    }

    /// Whether llama.cpp's converter permutes q/k rows for this arch (`llama` only).
    public static func permutesQK(_ arch: String) -> Bool { arch == "llama" }

    /// Heads whose rows are permuted for a module (q: H, k: Hk), or nil.
    static func permutedHeads(_ m: LinearModule, _ c: LlamaConfig) -> Int? {
        switch m {
        case .q: return c.numHeads
        case .k: return c.numKVHeads
        default: return nil
        }
    }

    /// Reorders rows of a [heads * E, R] matrix between HF and GGUF order.
    static func permuteRows(_ b: [Float], heads: Int, headDim E: Int, columns: Int, toGGUF: Bool) -> [Float] {
        var out = b
        for h in 0..<heads {
            for r in 0..<E {
                let hf = h * E + r, gg = LlamaQKPermutation.ggufRow(forHFRow: hf, headDim: E)
                let (dst, src) = toGGUF ? (gg, hf) : (hf, gg)
                out.replaceSubrange(dst * columns..<(dst + 1) * columns, with: b[src * columns..<(src + 1) * columns])
            }
        }
        return out
    }

    /// Builds the GGUF adapter file's contents. `architecture` is the base's GGUF architecture.
    public static func writer(_ adapter: LoRAAdapter, base c: LlamaConfig, architecture: String, type: GGMLType = .f32,
                              name: String? = nil) throws -> GGUFWriter {
        var w = GGUFWriter()
        let alpha = adapter.config.alpha
        w.set("general.architecture", .string(architecture))
        w.set("general.type", .string("adapter"))
        if let name { w.set("general.name", .string(name)) }
        w.set("adapter.type", .string("lora"))
        w.set("adapter.lora.alpha", .float32(alpha))
        let permute = permutesQK(architecture)
        for p in adapter.pairs {
            let a = Array(adapter.parameters[p.aOffset..<(p.aOffset + p.aCount)])
            var b = Array(adapter.parameters[p.bOffset..<(p.bOffset + p.bCount)])
            // llama.cpp scales by alpha / R; fold the rest of our scaling into B.
            let fold = p.scaling / (alpha / Float(p.rank))
            if fold != 1 { b = b.map { $0 * fold } }
            if permute, let heads = permutedHeads(p.module, c) {
                b = permuteRows(b, heads: heads, headDim: c.headDim, columns: p.rank, toGGUF: true)
            }
            let base = tensorName(layer: p.layer, module: p.module)
            try w.add(base + ".lora_a", shape: [p.rank, p.inFeatures], values: a, type: type)
            try w.add(base + ".lora_b", shape: [p.outFeatures, p.rank], values: b, type: type)
        }
        return w
    }

    public static func write(_ adapter: LoRAAdapter, base c: LlamaConfig, architecture: String, type: GGMLType = .f32,
                             name: String? = nil, to url: URL) throws {
        try writer(adapter, base: c, architecture: architecture, type: type, name: name).write(to: url)
    }

    /// Reads a GGUF LoRA adapter for `base` (whose GGUF architecture is `architecture`), undoing the
    /// q/k permutation. The result's config has alpha = `adapter.lora.alpha` (0 means llama.cpp's
    /// scale 1, i.e. alpha = R), the most common rank as `r` and the others as `rank_pattern`
    /// entries, so that PEFT's alpha / R is llama.cpp's scale for every pair. Errors name the
    /// file and the key or tensor.
    public static func read(_ url: URL, base c: LlamaConfig, architecture: String) throws -> LoRAAdapter {
        let f = try GGUFFile(url)
        let path = url.path
        func bad(_ field: String, _ reason: String) -> ModelError { .unsupportedConfig(path: path, field: field, reason: reason) }
        guard f.metadata["general.type"]?.string == "adapter" else {
            throw bad("general.type", "\(f.metadata["general.type"].map { "\($0)" } ?? "missing"): not a GGUF adapter (expected 'adapter')")
        }
        guard f.metadata["adapter.type"]?.string == "lora" else {
            throw bad("adapter.type", "\(f.metadata["adapter.type"].map { "\($0)" } ?? "missing"): only 'lora' adapters are supported")
        }
        let arch = f.metadata["general.architecture"]?.string ?? ""
        guard arch == architecture else {
            throw bad("general.architecture", "'\(arch)' but the base model is '\(architecture)'; hint: maybe wrong base model?")
        }
        var alpha: Float = 0
        if let v = f.metadata["adapter.lora.alpha"] {
            guard let a = v.float, a.isFinite, a >= 0 else { throw bad("adapter.lora.alpha", "\(v) is not a non-negative number") }
            alpha = a
        }
        // Which (layer, module) pairs exist, with their ranks.
        var found: [LinearModule: [Int: Int]] = [:]
        var known = Set<String>()
        for layer in 0..<c.numLayers {
            for m in LinearModule.allCases {
                let n = tensorName(layer: layer, module: m)
                let ta = f.tensor(named: n + ".lora_a"), tb = f.tensor(named: n + ".lora_b")
                if ta == nil && tb == nil { continue }
                guard let ta, let tb else {
                    throw ModelError.missingTensor(path: path, name: n + (ta == nil ? ".lora_a" : ".lora_b"), expectedShape: [])
                }
                let (outN, inK) = LoRAAdapter.shape(of: m, c)
                let r = ta.shape.first ?? 0
                guard ta.shape.count == 2, r > 0, ta.shape == [r, inK], tb.shape == [outN, r] else {
                    throw bad(n, "lora_a \(ta.shape) / lora_b \(tb.shape), expected [R, \(inK)] / [\(outN), R] for this base; hint: maybe wrong base model?")
                }
                found[m, default: [:]][layer] = r
                known.insert(n + ".lora_a"); known.insert(n + ".lora_b")
            }
        }
        for t in f.tensors where !known.contains(t.name) {
            throw bad(t.name, "not a LoRA factor of a linear layer of this base (embeddings, the output head and layers beyond \(c.numLayers) are not supported)")
        }
        guard !found.isEmpty else { throw ModelError.malformedFile(path: path, offset: nil, reason: "no LoRA tensors") }
        let targets = LinearModule.allCases.filter { found[$0] != nil }
        for m in targets where found[m]!.count != c.numLayers {
            let missing = (0..<c.numLayers).first { found[m]![$0] == nil }!
            throw ModelError.missingTensor(path: path, name: tensorName(layer: missing, module: m) + ".lora_a", expectedShape: [])
        }
        var counts: [Int: Int] = [:]
        for m in targets { for r in found[m]!.values { counts[r, default: 0] += 1 } }
        let rank = counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }!.key
        var pattern = PatternTable<Int>()
        for layer in 0..<c.numLayers {
            for m in targets where found[m]![layer]! != rank {
                // A full module path, escaped: it matches that module only.
                pattern[NSRegularExpression.escapedPattern(for: LoRAConfig.modulePath(layer: layer, module: m))] = found[m]![layer]!
            }
        }
        let config = LoRAConfig(rank: rank, alpha: alpha > 0 ? alpha : Float(rank), dropout: 0, targets: targets,
                                useRSLoRA: false, rankPattern: pattern)
        if alpha == 0, !pattern.isEmpty {
            throw bad("adapter.lora.alpha", "0 (scale 1 for every pair) with pairs of different ranks cannot be expressed as one PEFT lora_alpha")
        }
        let adapter = LoRAAdapter(config: config, base: c)
        for p in adapter.pairs {
            let n = tensorName(layer: p.layer, module: p.module)
            let a = try f.floats(n + ".lora_a")
            var b = try f.floats(n + ".lora_b")
            if permutesQK(architecture), let heads = permutedHeads(p.module, c) {
                b = permuteRows(b, heads: heads, headDim: c.headDim, columns: p.rank, toGGUF: false)
            }
            for (name, values) in [(n + ".lora_a", a), (n + ".lora_b", b)] {
                if let i = values.firstIndex(where: { !$0.isFinite }) {
                    throw ModelError.malformedFile(path: path, offset: nil, reason: "tensor '\(name)' holds a non-finite value (\(values[i]) at element \(i))")
                }
            }
            adapter.parameters.replaceSubrange(p.aOffset..<(p.aOffset + p.aCount), with: a)
            adapter.parameters.replaceSubrange(p.bOffset..<(p.bOffset + p.bCount), with: b)
        }
        return adapter
    }
}
