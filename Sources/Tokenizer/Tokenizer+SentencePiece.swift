extension Tokenizer {
    /// SentencePiece-style BPE from GGUF (`tokenizer.ggml.model = "llama"`: Llama 2, Mistral, TinyLlama),
    /// built as transformers 5 builds it from a GGUF (integrations/gguf/gguf_tokenizer_mapping.py with
    /// LlamaTokenizer): BPE with byte fallback and fused unknowns, no normalizer, a Metaspace
    /// pre-tokenizer prepending "▁" to the text's first piece (unless `add_space_prefix` is false), the
    /// decoder Replace("▁", " ") + ByteFallback + Fuse + Strip(" ", 1, 0). When the file has no merges
    /// they are derived from the vocabulary and scores as transformers' `generate_merges` does. BOS is
    /// added unless `add_bos_token` is false.
    static func sentencePieceParts(_ g: GGUFTokenizerData, source: String) throws -> Parts {
        let vocab = try ggufVocab(g, source: source)
        if let scores = g.scores, scores.count != g.tokens.count {
            throw TokenizerError.invalidField(file: source, field: "tokenizer.ggml.scores",
                                              reason: "\(scores.count) entries for \(g.tokens.count) tokens")
        }
        let merges = g.merges.isEmpty ? derivedMerges(g, vocab: vocab) : try ggufMerges(g, source: source)
        let unk = g.unknownTokenId.map { g.tokens[$0] }
        let model = try BPEModel(vocab: vocab, merges: merges, unkToken: unk, fuseUnk: true, byteFallback: true,
                                 ignoreMerges: false, source: source, mergesField: "tokenizer.ggml.merges")
        let prefix = g.addSpacePrefix ?? true
        var decoders: [Decoder] = [.replace(pattern: "\u{2581}", content: " "), .byteFallback, .fuse]
        if prefix { decoders.append(.strip(content: " ", start: 1, stop: 0)) }
        return Parts(model: model, normalizer: nil,
                     preTokenizer: .metaspace(replacement: "\u{2581}", prependScheme: prefix ? "first" : "never", split: false),
                     postProcessor: ggufPostProcessor(g, defaultAddBos: true), decoder: .sequence(decoders),
                     addedTokens: ggufAddedTokens(g, vocab: vocab, byteLevel: false),
                     bosTokenId: g.bosTokenId, eosTokenId: g.eosTokenId, chatTemplate: g.chatTemplate)
    }

    /// Every split of every token into two vocabulary tokens, best first: by the token's score
    /// (descending), then the longer left piece, then the longer right piece; ties keep vocabulary
    /// order, and the splits of one token are ordered by the ids of their pieces. Without scores the
    /// token's id is the key, ascending. (transformers `generate_merges`, tokenization_utils_base.py.)
    static func derivedMerges(_ g: GGUFTokenizerData, vocab: [String: Int]) -> [(String, String)] {
        struct Merge { var left: String, right: String, key: Float, leftLen: Int, rightLen: Int }
        var all: [Merge] = []
        for (id, token) in g.tokens.enumerated() {
            let scalars = Array(token.unicodeScalars)
            guard scalars.count > 1 else { continue }
            let key = g.scores.map { $0[id] } ?? Float(id)
            var local: [(Int, Int, Merge)] = []
            for k in 1..<scalars.count {
                let l = String(String.UnicodeScalarView(scalars[..<k])), r = String(String.UnicodeScalarView(scalars[k...]))
                if let li = vocab[l], let ri = vocab[r] {
                    local.append((li, ri, Merge(left: l, right: r, key: key, leftLen: k, rightLen: scalars.count - k)))
                }
            }
            local.sort { ($0.0, $0.1) < ($1.0, $1.1) }
            all.append(contentsOf: local.map { $0.2 })
        }
        let descending = g.scores != nil
        // A stable sort: Python's `sorted(..., reverse=True)` keeps equal elements in their original order.
        let order = all.indices.sorted { a, b in
            let x = all[a], y = all[b]
            if x.key != y.key { return descending ? x.key > y.key : x.key < y.key }
            if x.leftLen != y.leftLen { return descending ? x.leftLen > y.leftLen : x.leftLen < y.leftLen }
            if x.rightLen != y.rightLen { return descending ? x.rightLen > y.rightLen : x.rightLen < y.rightLen }
            return a < b
        }
        return order.map { (all[$0].left, all[$0].right) }
    }
}
