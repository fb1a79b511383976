/// The tokenizer as a GGUF file's metadata describes it (`tokenizer.ggml.*` keys), handed by the
/// model loader to `Tokenizer(gguf:)`. Plain data: the Tokenizer target knows nothing of GGUF files.
public struct GGUFTokenizerData: Sendable, Equatable {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE).
    public var model: String
    /// `tokenizer.ggml.pre`: the pre-tokenizer's name (e.g. "smollm", "llama-bpe", "qwen2"), if given.
    public var pre: String?
    /// `tokenizer.ggml.tokens`, indexed by token id.
    public var tokens: [String]
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public var tokenTypes: [Int32]?
    /// `tokenizer.ggml.merges`, each "left right".
    public var merges: [String]
    /// `tokenizer.ggml.scores` (SentencePiece models).
    public var scores: [Float]?
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var unknownTokenId: Int?
    public var paddingTokenId: Int?
    /// `tokenizer.ggml.add_bos_token` / `add_eos_token`, when present.
    public var addBosToken: Bool?
    public var addEosToken: Bool?
    /// `tokenizer.chat_template`, when present.
    public var chatTemplate: String?
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece models: prepend "▁" to the text), when present.
    public var addSpacePrefix: Bool?

    public init(model: String, pre: String? = nil, tokens: [String], tokenTypes: [Int32]? = nil,
                merges: [String] = [], scores: [Float]? = nil, bosTokenId: Int? = nil, eosTokenId: Int? = nil,
                unknownTokenId: Int? = nil, paddingTokenId: Int? = nil, addBosToken: Bool? = nil,
                addEosToken: Bool? = nil, chatTemplate: String? = nil, addSpacePrefix: Bool? = nil) {
        self.model = model; self.pre = pre; self.tokens = tokens; self.tokenTypes = tokenTypes
        self.merges = merges; self.scores = scores; self.bosTokenId = bosTokenId; self.eosTokenId = eosTokenId
        self.unknownTokenId = unknownTokenId; self.paddingTokenId = paddingTokenId
        self.addBosToken = addBosToken; self.addEosToken = addEosToken; self.chatTemplate = chatTemplate
        self.addSpacePrefix = addSpacePrefix
    }
}
