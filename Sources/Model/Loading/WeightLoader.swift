import Kernels

/// Where tensors come from when building `ModelWeights`: their names in the file, their shapes in
/// PyTorch order, and fp32 data. One tensor is dequantized at a time, so loading holds the fp32
/// model plus one tensor, never a second copy of the model.
struct TensorSource {
    var path: (String) -> String
    var shape: (String) -> [Int]?
    var floats: (String) throws -> [Float]
}

/// The tensor names of each checkpoint format.
struct TensorNames {
    var embedding: String
    var finalNorm: String
    var lmHead: String
    var layer: (Int, LayerTensor) -> String
    /// Whether q/k rows are in llama.cpp's interleaved order and must be un-permuted.
    var permutedQK: Bool

    enum LayerTensor: CaseIterable { case attnNorm, q, k, v, o, mlpNorm, gate, up, down }

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
            }
        }, permutedQK: true)
}

enum WeightLoader {
    /// Builds fp32 `ModelWeights`, checking every tensor's presence and shape against `config`.
    static func load(config c: LlamaConfig, names: TensorNames, source: TensorSource) throws -> ModelWeights {
        let D = c.hiddenSize, F = c.intermediateSize, V = c.vocabSize

        func tensor(_ name: String, _ expected: [Int]) throws -> [Float] {
            guard let shape = source.shape(name) else {
                throw ModelError.missingTensor(path: source.path(name), name: name, expectedShape: expected)
            }
            guard shape == expected else {
                throw ModelError.wrongShape(path: source.path(name), name: name, expected: expected, actual: shape)
            }
            return try source.floats(name)
        }
        func linear(_ name: String, _ out: Int, _ inp: Int, unpermuteHeads: Int? = nil) throws -> DenseWeight {
            var data = try tensor(name, [out, inp])
            if let heads = unpermuteHeads { unpermuteRows(&data, heads: heads, headDim: c.headDim, columns: inp) }
            return DenseWeight(outFeatures: out, inFeatures: inp, data: data)
        }

        let embedding = try tensor(names.embedding, [V, D])
        var layers: [LayerWeights] = []
        layers.reserveCapacity(c.numLayers)
        for i in 0..<c.numLayers {
            let n = { (t: TensorNames.LayerTensor) in names.layer(i, t) }
            layers.append(LayerWeights(
                attnNorm: try tensor(n(.attnNorm), [D]),
                q: try linear(n(.q), c.qDim, D, unpermuteHeads: names.permutedQK ? c.numHeads : nil),
                k: try linear(n(.k), c.kvDim, D, unpermuteHeads: names.permutedQK ? c.numKVHeads : nil),
                v: try linear(n(.v), c.kvDim, D),
                o: try linear(n(.o), D, c.qDim),
                mlpNorm: try tensor(n(.mlpNorm), [D]),
                gate: try linear(n(.gate), F, D),
                up: try linear(n(.up), F, D),
                down: try linear(n(.down), D, F)))
        }
        let finalNorm = try tensor(names.finalNorm, [D])
        // Tied: the head shares the embedding's storage (copy-on-write array, no copy made).
        let lmHead = c.tieWordEmbeddings
            ? DenseWeight(outFeatures: V, inFeatures: D, data: embedding)
            : try linear(names.lmHead, V, D)
        return ModelWeights(embedding: embedding, layers: layers, finalNorm: finalNorm, lmHead: lmHead)
    }

    /// Undoes llama.cpp's q/k row permutation (convert_hf_to_gguf.py `LlamaModel.permute`: rows viewed
    /// as [heads, 2, E/2] with the last two axes swapped, so a head's rows go from HF's rotate-half
    /// order (first halves, then second halves) to interleaved pairs). In the GGUF, row 2j + a of a head
    /// is HF row a * E/2 + j; this puts every row back. `data` is [heads * E, columns] row-major.
    static func unpermuteRows(_ data: inout [Float], heads: Int, headDim E: Int, columns: Int) {
        let half = E / 2
        var head = [Float](repeating: 0, count: E * columns)
        data.withUnsafeMutableBufferPointer { w in
            head.withUnsafeMutableBufferPointer { tmp in
                for h in 0..<heads {
                    let base = w.baseAddress! + h * E * columns
                    tmp.baseAddress!.update(from: base, count: E * columns)
                    for j in 0..<half {
                        for a in 0..<2 {
                            let src = tmp.baseAddress! + (2 * j + a) * columns
                            let dst = base + (a * half + j) * columns
                            dst.update(from: src, count: columns)
                        }
                    }
                }
            }
        }
    }
}
