import Tokenizer

extension TextRecord {
    /// The token sequence and scored positions of a record, as `lora score` and `lora train` define them:
    /// - `text`: encode(text) with the tokenizer's own special tokens; every token after the first is scored.
    /// - `prompt`/`completion`: encode(prompt) with special tokens + encode(completion) without + EOS;
    ///   the completion's tokens and the EOS are scored.
    public func tokenize(with tokenizer: Tokenizer, eosTokenId: Int) -> TokenizedRecord {
        switch self {
        case let .text(text):
            let ids = tokenizer.encode(text, addSpecialTokens: true)
            return TokenizedRecord(tokens: ids, scored: ids.indices.map { $0 > 0 })
        case let .promptCompletion(prompt, completion):
            let p = tokenizer.encode(prompt, addSpecialTokens: true)
            let c = tokenizer.encode(completion, addSpecialTokens: false)
            let ids = p + c + [eosTokenId]
            // Position 0 is never scored: nothing precedes it.
            return TokenizedRecord(tokens: ids, scored: ids.indices.map { $0 >= p.count && $0 > 0 })
        }
    }
}
