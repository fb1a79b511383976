extension Tokenizer {
    /// A tokenizer from GGUF metadata (`tokenizer.ggml.*`).
    ///
    /// `tokenizer.ggml.model = "gpt2"`: byte-level BPE. The pre-tokenizer follows `tokenizer.ggml.pre`
    /// as llama.cpp defines it (llama-vocab.cpp): "smollm", "starcoder", "refact", "command-r",
    /// "codeshell", "exaone", "minerva" isolate each `\p{N}` scalar before the GPT-2 split (HF:
    /// Sequence[Digits(individual_digits), ByteLevel]); "gpt2", "default", "mpt", "olmo", "jais" (or
    /// no `pre`) use the GPT-2 split alone; "llama-bpe" / "llama3" and "qwen2" use their own split.
    /// Control tokens (type 3) are special added tokens, user-defined ones (type 4) plain added tokens.
    /// BOS / EOS are added when `add_bos_token` / `add_eos_token` say so (absent: false for gpt2).
    ///
    /// `tokenizer.ggml.model = "llama"`: SentencePiece-style BPE, see `Tokenizer+SentencePiece.swift`.
    public convenience init(gguf g: GGUFTokenizerData) throws {
        let source = "GGUF metadata"
        switch g.model {
        case "gpt2":
            try self.init(parts: Tokenizer.byteLevelParts(g, source: source))
        case "llama":
            try self.init(parts: Tokenizer.sentencePieceParts(g, source: source))
        default:
            throw TokenizerError.unsupported(file: source, field: "tokenizer.ggml.model", value: g.model)
        }
    }

    static func ggufVocab(_ g: GGUFTokenizerData, source: String) throws -> [String: Int] {
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(g.tokens.count)
        for (id, t) in g.tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
        if let types = g.tokenTypes, types.count != g.tokens.count {
            throw TokenizerError.invalidField(file: source, field: "tokenizer.ggml.token_type",
                                              reason: "\(types.count) entries for \(g.tokens.count) tokens")
        }
        for (field, id) in [("tokenizer.ggml.bos_token_id", g.bosTokenId), ("tokenizer.ggml.eos_token_id", g.eosTokenId),
                            ("tokenizer.ggml.unknown_token_id", g.unknownTokenId)] {
            if let id, !(0..<g.tokens.count).contains(id) {
                throw TokenizerError.invalidField(file: source, field: field, reason: "id \(id) is outside the \(g.tokens.count) tokens")
            }
        }
        return vocab
    }

    /// Merges "left right"; the separator is the first space after the first character, as llama.cpp reads them.
    static func ggufMerges(_ g: GGUFTokenizerData, source: String) throws -> [(String, String)] {
        var merges: [(String, String)] = []
        merges.reserveCapacity(g.merges.count)
        for (i, m) in g.merges.enumerated() {
            let scalars = m.unicodeScalars
            guard let first = scalars.first,
                  let space = scalars[scalars.index(after: scalars.startIndex)...].firstIndex(of: " ") else {
                throw TokenizerError.invalidField(file: source, field: "tokenizer.ggml.merges[\(i)]", reason: "expected \"left right\", got \(m.debugDescription)")
            }
            _ = first
            merges.append((String(scalars[..<space]), String(scalars[scalars.index(after: space)...])))
        }
        return merges
    }

    static func ggufAddedTokens(_ g: GGUFTokenizerData) -> [AddedToken] {
        guard let types = g.tokenTypes else { return [] }
        var out: [AddedToken] = []
        for (id, type) in types.enumerated() where type == 3 || type == 4 {
            let content = g.tokens[id]
            if content.isEmpty { continue }
            out.append(AddedToken(id: id, content: content, special: type == 3))
        }
        return out
    }

    static func ggufPostProcessor(_ g: GGUFTokenizerData, defaultAddBos: Bool) -> PostProcessor {
        var single: [TemplateItem] = []
        if g.addBosToken ?? defaultAddBos, let bos = g.bosTokenId { single.append(.special([bos])) }
        single.append(.sequence)
        if g.addEosToken ?? false, let eos = g.eosTokenId { single.append(.special([eos])) }
        return .template(single: single)
    }

    static func byteLevelPreTokenizer(pre: String?, source: String) throws -> PreTokenizer {
        let byteLevel = PreTokenizer.byteLevel(addPrefixSpace: false, useRegex: true)
        switch pre ?? "default" {
        case "default", "gpt2", "mpt", "olmo", "jais":
            return byteLevel
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            return .sequence([.digits(individual: true), byteLevel])
        case "llama-bpe", "llama3", "llama-v3":
            return .sequence([.split(.pattern(.llama3(maxDigits: 3)), .isolated, invert: false),
                              .byteLevel(addPrefixSpace: false, useRegex: false)])
        case "qwen2":
            return .sequence([.split(.pattern(.llama3(maxDigits: 1)), .isolated, invert: false),
                              .byteLevel(addPrefixSpace: false, useRegex: false)])
        case let other:
            throw TokenizerError.unsupported(file: source, field: "tokenizer.ggml.pre", value: other)
        }
    }

    static func byteLevelParts(_ g: GGUFTokenizerData, source: String) throws -> Parts {
        let vocab = try ggufVocab(g, source: source)
        let model = try BPEModel(vocab: vocab, merges: try ggufMerges(g, source: source), unkToken: nil, fuseUnk: false,
                                 byteFallback: false, ignoreMerges: g.pre == "llama-bpe" || g.pre == "llama3",
                                 source: source, mergesField: "tokenizer.ggml.merges")
        return Parts(model: model, normalizer: g.pre == "qwen2" ? .nfc : nil,
                     preTokenizer: try byteLevelPreTokenizer(pre: g.pre, source: source),
                     postProcessor: ggufPostProcessor(g, defaultAddBos: false), decoder: .byteLevel,
                     addedTokens: ggufAddedTokens(g), bosTokenId: g.bosTokenId, eosTokenId: g.eosTokenId,
                     chatTemplate: g.chatTemplate)
    }
}
