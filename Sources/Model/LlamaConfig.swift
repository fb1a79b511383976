import Kernels

/// The hyperparameters of a Llama-family decoder, whatever file they came from
/// (an HF `config.json` or GGUF metadata).
///
/// Dimension letters used across the project: V vocab, D model width, F FFN width,
/// H query heads, Hk key/value heads, E head size, L layers.
public struct LlamaConfig: Sendable, Equatable, Codable {
    /// "LlamaForCausalLM", "MistralForCausalLM" or "Qwen2ForCausalLM": the same decoder, except
    /// that Qwen2 adds biases to the q/k/v projections.
    public var architecture: String
    public var vocabSize: Int                // V
    public var hiddenSize: Int               // D
    public var intermediateSize: Int         // F
    public var numLayers: Int                // L
    public var numHeads: Int                 // H
    public var numKVHeads: Int               // Hk
    public var headDim: Int                  // E
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var bosTokenId: Int?
    /// Generation stops at any of these (config.json's eos_token_id may be a list; generation_config.json too).
    public var eosTokenIds: [Int]
    /// Attention window W (Mistral's `sliding_window`): position i attends to positions j with
    /// i - W < j <= i. nil: full causal attention.
    public var slidingWindow: Int?
    /// RoPE frequency scaling; nil is transformers' default rope.
    public var ropeScaling: RoPEScaling?

    public init(architecture: String = "LlamaForCausalLM", vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numLayers: Int, numHeads: Int, numKVHeads: Int, headDim: Int? = nil, rmsNormEps: Float,
                ropeTheta: Float, maxPositionEmbeddings: Int, tieWordEmbeddings: Bool,
                bosTokenId: Int?, eosTokenIds: [Int], slidingWindow: Int? = nil, ropeScaling: RoPEScaling? = nil) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim ?? hiddenSize / numHeads
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.slidingWindow = slidingWindow
        self.ropeScaling = ropeScaling
    }

    /// Whether q_proj, k_proj and v_proj carry bias vectors (Qwen2's attention).
    public var hasQKVBias: Bool { architecture == "Qwen2ForCausalLM" }

    /// The rotary inverse frequencies [E/2]: the default `1 / theta^(2i/E)`, then the scaling.
    public var ropeInverseFrequencies: [Float] {
        let base = RoPE(headDim: headDim, theta: ropeTheta).invFreq
        return ropeScaling?.apply(to: base) ?? base
    }

    /// The first key position that the query at `position` attends to.
    @inline(__always)
    public func firstVisiblePosition(_ position: Int) -> Int {
        guard let w = slidingWindow else { return 0 }
        return max(0, position - w + 1)
    }

    /// Query width H*E and key/value width Hk*E.
    public var qDim: Int { numHeads * headDim }
    public var kvDim: Int { numKVHeads * headDim }
}
