import Kernels
import Quantization

/// Where tensors come from when building `ModelWeights`: their names in the file, their shapes in
/// PyTorch order, and fp32 data. One tensor is dequantized at a time, so loading holds the fp32
/// model plus one tensor, never a second copy of the model.
struct TensorSource {
    var path: (String) -> String
    var shape: (String) -> [Int]?
    var floats: (String) throws -> [Float]
    /// GGUF only: a tensor's block type and its bytes as stored (for `--quant keep`).
    var raw: ((String) throws -> (type: GGMLType, bytes: UnsafeRawBufferPointer)?)? = nil
    /// bnb-4bit checkpoints only: a linear weight's stored NF4 state (name, [out, in]), nil when stored unquantized.
    var nf4: ((String, [Int]) throws -> NF4Tensor?)? = nil
}

/// The tensor names of each checkpoint format.
struct TensorNames {
    var embedding: String
    var finalNorm: String
    var lmHead: String
    var layer: (Int, LayerTensor) -> String
    /// Whether q/k rows are in llama.cpp's interleaved order and must be un-permuted.
    var permutedQK: Bool

    enum LayerTensor: CaseIterable { case attnNorm, q, k, v, o, mlpNorm, gate, up, down, qBias, kBias, vBias }

    static let huggingFace = TensorNames(
        embedding: "model.embed_tokens.weight", finalNorm: "model.norm.weight", lmHead: "lm_head.weight",
        layer: { i, t in
            let p = "model.layers.\(i)."
            switch t {
            case .attnNorm: return p + "input_layernorm.weight"
            case .q: return p + "self_attn.q_proj.weight"
            case .k: return p + "self_attn.k_proj.weight"
            case .v: return p + "self_attn.v_proj.weight"
            case .o: return p + "self_attn.o_proj.weight"
            case .mlpNorm: return p + "post_attention_layernorm.weight"
            case .gate: return p + "mlp.gate_proj.weight"
            case .up: return p + "mlp.up_proj.weight"
            case .down: return p + "mlp.down_proj.weight"
            case .qBias: return p + "self_attn.q_proj.bias"
            case .kBias: return p + "self_attn.k_proj.bias"
            case .vBias: return p + "self_attn.v_proj.bias"
            }
        }, permutedQK: false)

    /// llama.cpp's names (`gguf` Python package `constants.py` TENSOR_NAMES for MODEL_ARCH.LLAMA).
    static let gguf = TensorNames(
        embedding: "token_embd.weight", finalNorm: "output_norm.weight", lmHead: "output.weight",
        layer: { i, t in
            let p = "blk.\(i)."
            switch t {
            case .attnNorm: return p + "attn_norm.weight"
            case .q: return p + "attn_q.weight"
            case .k: return p + "attn_k.weight"
            case .v: return p + "attn_v.weight"
            case .o: return p + "attn_output.weight"
            case .mlpNorm: return p + "ffn_norm.weight"
            case .gate: return p + "ffn_gate.weight"
            case .up: return p + "ffn_up.weight"
            case .down: return p + "ffn_down.weight"
            case .qBias: return p + "attn_q.bias"
            case .kBias: return p + "attn_k.bias"
            case .vBias: return p + "attn_v.bias"
            }
        }, permutedQK: true)
}

enum WeightLoader {
    /// GGUF block types that `keep` computes with directly.
    static let keptTypes: Set<GGMLType> = [.q4_1, .q8_0]

    /// Builds `ModelWeights`, checking every tensor's presence and shape against `config`.
    /// Linear weights are held as `quant` says (already resolved: never `.auto`); each is
    /// quantized as soon as it is read, so the whole fp32 model is never resident at once.
    static func load(config c: LlamaConfig, names: TensorNames, source: TensorSource,
                     quant: QuantizationMode = .none) throws -> ModelWeights {
        precondition(quant != .auto, "resolve .auto before loading")
        let D = c.hiddenSize, F = c.intermediateSize, V = c.vocabSize

        func checkShape(_ name: String, _ expected: [Int]) throws {
            guard let shape = source.shape(name) else {
                throw ModelError.missingTensor(path: source.path(name), name: name, expectedShape: expected)
            }
            guard shape == expected else {
                throw ModelError.wrongShape(path: source.path(name), name: name, expected: expected, actual: shape)
            }
        }
        func tensor(_ name: String, _ expected: [Int]) throws -> [Float] {
            try checkShape(name, expected)
            return try source.floats(name)
        }
        /// The stored blocks of a tensor when `keep` can compute with them directly.
        func keptBlocks(_ name: String, _ out: Int, _ inp: Int, unpermuteHeads: Int?) throws -> (GGMLType, [UInt8])? {
            guard quant == .keep, let raw = source.raw else { return nil }
            try checkShape(name, [out, inp])
            guard let stored = try raw(name), keptTypes.contains(stored.type) else { return nil }
            // A large tensor (the head: read whole at every decode step) on huge pages where it spans some.
            var bytes = HugePages.copy(UnsafeRawBufferPointer(stored.bytes))
            if let heads = unpermuteHeads {
                let rowBytes = inp / stored.type.blockSize * stored.type.bytesPerBlock
                bytes.withUnsafeMutableBytes { LlamaQKPermutation.unpermuteRows($0, heads: heads, headDim: c.headDim, rowBytes: rowBytes) }
            }
            return (stored.type, bytes)
        }
        func linear(_ name: String, _ out: Int, _ inp: Int, unpermuteHeads: Int? = nil) throws -> LinearWeight {
            if let (type, bytes) = try keptBlocks(name, out, inp, unpermuteHeads: unpermuteHeads) {
                return type == .q4_1 ? try Q4_1Weight(outFeatures: out, inFeatures: inp, blocks: bytes)
                                     : try Q8_0Weight(outFeatures: out, inFeatures: inp, blocks: bytes)
            }
            // A bnb-4bit checkpoint's NF4 state is used as stored under nf4/keep, else dequantized.
            let stored = try source.nf4?(name, [out, inp])
            if let stored, quant == .nf4 || quant == .keep { return try NF4Weight(stored) }
            var data = try stored?.dequantized() ?? tensor(name, [out, inp])
            if let heads = unpermuteHeads { unpermuteRows(&data, heads: heads, headDim: c.headDim, columns: inp) }
            switch quant {
            case .nf4: return try NF4Weight(outFeatures: out, inFeatures: inp, data: data)
            case .int8: return try Int8Weight(outFeatures: out, inFeatures: inp, data: data)
            case .none, .keep, .auto: return DenseWeight(outFeatures: out, inFeatures: inp, data: data)
            }
        }

        // Under `keep` a quantized embedding table stays as stored, and so does a tied head.
        var quantizedEmbedding: QuantizedRows?
        if let (type, bytes) = try keptBlocks(names.embedding, V, D, unpermuteHeads: nil) {
            quantizedEmbedding = QuantizedRows(type: type, rows: V, columns: D, bytes: bytes)
        }
        let embedding = quantizedEmbedding == nil ? try tensor(names.embedding, [V, D]) : []
        var layers: [LayerWeights] = []
        layers.reserveCapacity(c.numLayers)
        for i in 0..<c.numLayers {
            let n = { (t: TensorNames.LayerTensor) in names.layer(i, t) }
            // Biases are vectors of the projection's rows, in HF order (qwen2 GGUFs, the only ones
            // with biases, do not permute q/k rows).
            func bias(_ t: TensorNames.LayerTensor, _ rows: Int) throws -> [Float]? {
                c.hasQKVBias ? try tensor(n(t), [rows]) : nil
            }
            layers.append(LayerWeights(
                attnNorm: try tensor(n(.attnNorm), [D]),
                q: try linear(n(.q), c.qDim, D, unpermuteHeads: names.permutedQK ? c.numHeads : nil),
                k: try linear(n(.k), c.kvDim, D, unpermuteHeads: names.permutedQK ? c.numKVHeads : nil),
                v: try linear(n(.v), c.kvDim, D),
                o: try linear(n(.o), D, c.qDim),
                mlpNorm: try tensor(n(.mlpNorm), [D]),
                gate: try linear(n(.gate), F, D),
                up: try linear(n(.up), F, D),
                down: try linear(n(.down), D, F),
                qBias: try bias(.qBias, c.qDim), kBias: try bias(.kBias, c.kvDim), vBias: try bias(.vBias, c.kvDim)))
        }
        let finalNorm = try tensor(names.finalNorm, [D])
        // Tied: the head shares the embedding's storage (copy-on-write array, no copy made), or its
        // kept blocks. The head is never NF4/int8: transformers leaves lm_head unquantized. Kept blocks are
        // marked as the output head: its decode rows keep fp32 activations under the default `DecodeActivations.q8`.
        let lmHead: LinearWeight
        if c.tieWordEmbeddings {
            if let q = quantizedEmbedding {
                lmHead = q.type == .q4_1 ? try Q4_1Weight(outFeatures: V, inFeatures: D, blocks: q.bytes, outputHead: true)
                                         : try Q8_0Weight(outFeatures: V, inFeatures: D, blocks: q.bytes, outputHead: true)
            } else {
                lmHead = DenseWeight(outFeatures: V, inFeatures: D, data: embedding)
            }
        } else if let (type, bytes) = try keptBlocks(names.lmHead, V, D, unpermuteHeads: nil) {
            lmHead = type == .q4_1 ? try Q4_1Weight(outFeatures: V, inFeatures: D, blocks: bytes, outputHead: true)
                                   : try Q8_0Weight(outFeatures: V, inFeatures: D, blocks: bytes, outputHead: true)
        } else {
            lmHead = DenseWeight(outFeatures: V, inFeatures: D, data: try tensor(names.lmHead, [V, D]))
        }
        return ModelWeights(embedding: embedding, layers: layers, finalNorm: finalNorm, lmHead: lmHead,
                            quantizedEmbedding: quantizedEmbedding)
    }

    static func unpermuteRows(_ data: inout [Float], heads: Int, headDim: Int, columns: Int) {
        data.withUnsafeMutableBytes { raw in
            LlamaQKPermutation.unpermuteRows(raw, heads: heads, headDim: headDim, rowBytes: columns * MemoryLayout<Float>.size)
        }
    }
}

/// llama.cpp's q/k row permutation for arch `llama` and its inverse.
///
/// convert_hf_to_gguf.py `LlamaModel.permute` views a q (or k) weight's rows as [heads, 2, E/2] and swaps
/// the last two axes, turning each head's rows from HF's rotate-half order (all first halves, then all
/// second halves) into interleaved pairs for adjacent-pair rotary. So GGUF row h*E + 2j + a holds HF row
/// h*E + a*E/2 + j. q uses the query head count, k the key/value head count. Whole rows move, so the
/// same inverse applies to fp32 rows and to rows of quantized blocks.
public enum LlamaQKPermutation {
    /// The GGUF row that holds HF row `hfRow`.
    public static func ggufRow(forHFRow hfRow: Int, headDim E: Int) -> Int {
        let h = hfRow / E, r = hfRow % E, half = E / 2
        return h * E + 2 * (r % half) + r / half
    }

    /// Reorders the `heads * headDim` rows of `rowBytes` bytes each in `data` from GGUF order to HF order.
    public static func unpermuteRows(_ data: UnsafeMutableRawBufferPointer, heads: Int, headDim E: Int, rowBytes: Int) {
        precondition(data.count >= heads * E * rowBytes, "unpermuteRows: buffer smaller than heads*E rows")
        guard heads > 0, E > 0, rowBytes > 0, let base = data.baseAddress else { return }
        let headBytes = E * rowBytes
        let tmp = UnsafeMutableRawPointer.allocate(byteCount: headBytes, alignment: 16)
        defer { tmp.deallocate() }
        for h in 0..<heads {
            let head = base + h * headBytes
            tmp.copyMemory(from: head, byteCount: headBytes)
            for r in 0..<E {
                (head + r * rowBytes).copyMemory(from: tmp + ggufRow(forHFRow: r, headDim: E) * rowBytes, byteCount: rowBytes)
            }
        }
    }
}
