extension Tokenizer {
    /// SentencePiece-style BPE from GGUF (`tokenizer.ggml.model = "llama"`). Not implemented yet.
    static func sentencePieceParts(_ g: GGUFTokenizerData, source: String) throws -> Parts {
        throw TokenizerError.unsupported(file: source, field: "tokenizer.ggml.model", value: g.model)
    }
}
