/// The hyperparameters of a Llama-family decoder, whatever file they came from
/// (an HF `config.json` or GGUF metadata).
///
/// Dimension letters used across the project: V vocab, D model width, F FFN width,
/// H query heads, Hk key/value heads, E head size, L layers.
public struct LlamaConfig: Sendable, Equatable, Codable {
    public var architecture: String          // "LlamaForCausalLM"
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

    public init(architecture: String = "LlamaForCausalLM", vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numLayers: Int, numHeads: Int, numKVHeads: Int, headDim: Int? = nil, rmsNormEps: Float,
                ropeTheta: Float, maxPositionEmbeddings: Int, tieWordEmbeddings: Bool,
                bosTokenId: Int?, eosTokenIds: [Int]) {
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
    }

    /// Query width H*E and key/value width Hk*E.
    public var qDim: Int { numHeads * headDim }
    public var kvDim: Int { numKVHeads * headDim }
}
