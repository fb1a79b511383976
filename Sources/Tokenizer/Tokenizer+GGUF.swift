extension Tokenizer {
    /// A tokenizer from GGUF metadata (`tokenizer.ggml.*`).
    ///
    /// `tokenizer.ggml.model = "gpt2"`: byte-level BPE. The pre-tokenizer follows `tokenizer.ggml.pre`
    /// as llama.cpp defines it (llama-vocab.cpp): "smollm", "starcoder", "refact", "command-r",
    /// "codeshell", "exaone", "minerva" isolate each `\p{N}` scalar before the GPT-2 split (HF:
    /// Sequence[Digits(individual_digits), ByteLevel]); "gpt-2" (llama.cpp's spelling; also "gpt2"), "default", "mpt", "olmo", "jais" (or
    /// no `pre`) use the GPT-2 split alone; "llama-bpe" / "llama3" and "qwen2" use their own split.
    /// Where transformers' GGUF reader and the family's own tokenizer.json disagree, this follows the
    /// family's tokenizer.json and llama.cpp: digits isolated for "smollm", `ignore_merges` for Llama 3,
    /// NFC for Qwen2 (transformers' reader drops all three).
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

    /// token -> id. With `byteLevel`, a token written outside the byte alphabet (llama.cpp stores some
    /// added tokens as plain text) is respelled through its UTF-8 bytes, as transformers does.
    static func ggufVocab(_ g: GGUFTokenizerData, source: String, byteLevel: Bool = false) throws -> [String: Int] {
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(g.tokens.count)
        for (id, t) in g.tokens.enumerated() {
            var key = t
            if byteLevel, !t.unicodeScalars.allSatisfy({ ByteLevelMapping.byte(for: $0) != nil }) {
                key = String(String.UnicodeScalarView(ByteLevelMapping.encode(t.unicodeScalars)))
            }
            if vocab[key] == nil { vocab[key] = id }
        }
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

    /// Control tokens (type 3) as special added tokens, user-defined ones (type 4) as plain added tokens,
    /// and the bos / eos / unknown / padding tokens as special added tokens, as transformers' GGUF reader
    /// does. In a byte-level vocabulary, a control token written outside the byte alphabet is a
    /// mislabel and is skipped (transformers `add_gguf_special_tokens`).
    static func ggufAddedTokens(_ g: GGUFTokenizerData, vocab: [String: Int], byteLevel: Bool) -> [AddedToken] {
        var out: [AddedToken] = []
        var seen = Set<Int>()
        func add(_ id: Int, special: Bool) {
            guard id >= 0, id < g.tokens.count, !g.tokens[id].isEmpty, !seen.contains(id) else { return }
            seen.insert(id)
            out.append(AddedToken(id: id, content: g.tokens[id], special: special))
        }
        if let types = g.tokenTypes {
            for (id, type) in types.enumerated() {
                if type == 3 && (!byteLevel || g.tokens[id].unicodeScalars.allSatisfy { ByteLevelMapping.byte(for: $0) != nil }) {
                    add(id, special: true)
                } else if type == 4 && vocab[g.tokens[id]] != nil {
                    add(id, special: false)
                }
            }
        }
        for id in [g.bosTokenId, g.eosTokenId, g.unknownTokenId, g.paddingTokenId].compactMap({ $0 }) { add(id, special: true) }
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
        case "default", "gpt2", "gpt-2", "mpt", "olmo", "jais":
            return byteLevel
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            return .sequence([.digits(individual: true), byteLevel])
        case "llama-bpe", "llama3", "llama-v3", "falcon3", "smaug-bpe", "dbrx", "pixtral":
            return .sequence([.split(.pattern(.llama3(maxDigits: 3)), .isolated, invert: false),
                              .byteLevel(addPrefixSpace: false, useRegex: false)])
        case "qwen2", "deepseek-r1-qwen", "megrez":
            return .sequence([.split(.pattern(.llama3(maxDigits: 1)), .isolated, invert: false),
                              .byteLevel(addPrefixSpace: false, useRegex: false)])
        case let other:
            throw TokenizerError.unsupported(file: source, field: "tokenizer.ggml.pre", value: other)
        }
    }

    static func byteLevelParts(_ g: GGUFTokenizerData, source: String) throws -> Parts {
        let vocab = try ggufVocab(g, source: source, byteLevel: true)
        let model = try BPEModel(vocab: vocab, merges: try ggufMerges(g, source: source), unkToken: nil, fuseUnk: false,
                                 byteFallback: false, ignoreMerges: ["llama-bpe", "llama3", "llama-v3"].contains(g.pre ?? ""),
                                 source: source, mergesField: "tokenizer.ggml.merges")
        return Parts(model: model, normalizer: ["qwen2", "deepseek-r1-qwen", "megrez"].contains(g.pre ?? "") ? .nfc : nil,
                     preTokenizer: try byteLevelPreTokenizer(pre: g.pre, source: source),
                     postProcessor: ggufPostProcessor(g, defaultAddBos: false), decoder: .byteLevel,
                     addedTokens: ggufAddedTokens(g, vocab: vocab, byteLevel: true), bosTokenId: g.bosTokenId, eosTokenId: g.eosTokenId,
                     chatTemplate: g.chatTemplate)
    }
}
