import Foundation

/// A GGUF tokenizer written as an HF `tokenizer.json` + `tokenizer_config.json` (for `lora quantize` of a
/// GGUF source), describing the same tokenizer `Tokenizer(gguf:)` builds, so that reading the files back
/// with `Tokenizer(tokenizerJSON:tokenizerConfig:)` (or HF `tokenizers`) gives the same ids.
///
/// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`) only. The layout follows what tokenizers 0.23 saves
/// (Tests/Fixtures/tokenizers/smollm2/tokenizer.json): model BPE with vocab and merges as pairs, added
/// tokens with their special flags, a TemplateProcessing post-processor, a ByteLevel decoder. The
/// pre-tokenizer is the one `Tokenizer(gguf:)` uses for `tokenizer.ggml.pre` (the family's own
/// tokenizer.json: digits isolated for "smollm", the Llama 3 / Qwen2 Split patterns).
extension GGUFTokenizerData {
    /// Llama 3's and Qwen2's tokenizer.json Split regexes (the strings `SplitPattern` recognizes).
    static let llama3SplitRegex = SplitPattern.llama3Source
    static let qwen2SplitRegex = SplitPattern.qwen2Source

    /// `tokenizer.json` as a JSON object (serialize with JSONSerialization).
    public func tokenizerJSONObject() throws -> [String: Any] {
        let source = "GGUF metadata"
        guard model == "gpt2" else {
            throw TokenizerError.unsupported(file: source, field: "tokenizer.ggml.model",
                                             value: "\(model) (only byte-level BPE, gpt2, can be written as tokenizer.json)")
        }
        let vocab = try Tokenizer.ggufVocab(self, source: source, byteLevel: true)
        let merges = try Tokenizer.ggufMerges(self, source: source)
        let added = Tokenizer.ggufAddedTokens(self, vocab: vocab, byteLevel: true)

        func byteLevel(useRegex: Bool) -> [String: Any] {
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex]
        }
        func split(_ regex: String) -> [String: Any] {
            ["type": "Split", "pattern": ["Regex": regex], "behavior": "Isolated", "invert": false]
        }
        let preTokenizer: [String: Any]
        switch pre ?? "default" {
        case "default", "gpt2", "gpt-2", "mpt", "olmo", "jais":
            preTokenizer = byteLevel(useRegex: true)
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            preTokenizer = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(useRegex: true)]]
        case "llama-bpe", "llama3", "llama-v3", "falcon3", "smaug-bpe", "dbrx", "pixtral":
            preTokenizer = ["type": "Sequence", "pretokenizers": [split(Self.llama3SplitRegex), byteLevel(useRegex: false)]]
        case "qwen2", "deepseek-r1-qwen", "megrez":
            preTokenizer = ["type": "Sequence", "pretokenizers": [split(Self.qwen2SplitRegex), byteLevel(useRegex: false)]]
        case let other:
            throw TokenizerError.unsupported(file: source, field: "tokenizer.ggml.pre", value: other)
        }
        let nfc = ["qwen2", "deepseek-r1-qwen", "megrez"].contains(pre ?? "")
        let ignoreMerges = ["llama-bpe", "llama3", "llama-v3"].contains(pre ?? "")

        // [bos if add_bos_token] $A [eos if add_eos_token], as Tokenizer(gguf:) post-processes.
        var specials: [String: Any] = [:]
        func special(_ id: Int?, _ enabled: Bool?, _ typeId: Int) -> [[String: Any]] {
            guard enabled ?? false, let id, tokens.indices.contains(id) else { return [] }
            let t = tokens[id]
            specials[t] = ["id": t, "ids": [id], "tokens": [t]]
            return [["SpecialToken": ["id": t, "type_id": typeId]]]
        }
        func seq(_ name: String, _ typeId: Int) -> [[String: Any]] { [["Sequence": ["id": name, "type_id": typeId]]] }
        let single = special(bosTokenId, addBosToken, 0) + seq("A", 0) + special(eosTokenId, addEosToken, 0)
        let pair = single + special(bosTokenId, addBosToken, 1) + seq("B", 1) + special(eosTokenId, addEosToken, 1)

        return [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": added.map { t -> [String: Any] in
                ["id": t.id, "content": t.content, "single_word": false, "lstrip": false, "rstrip": false,
                 "normalized": t.normalized, "special": t.special]
            },
            "normalizer": nfc ? ["type": "NFC"] as [String: Any] : NSNull(),
            "pre_tokenizer": preTokenizer,
            "post_processor": ["type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials] as [String: Any],
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignoreMerges,
                "vocab": vocab, "merges": merges.map { [$0.0, $0.1] },
            ] as [String: Any],
        ]
    }

    /// `tokenizer_config.json` as transformers 5 writes it for a tokenizers-backed tokenizer: the special
    /// tokens by content, `model_max_length`. `add_bos_token` / `add_eos_token` are left out: the
    /// post-processor already says what is added.
    public func tokenizerConfigObject(modelMaxLength: Int) -> [String: Any] {
        var c: [String: Any] = [
            "backend": "tokenizers",
            "clean_up_tokenization_spaces": false,
            "model_max_length": modelMaxLength,
            "tokenizer_class": "TokenizersBackend",
        ]
        for (key, id) in [("bos_token", bosTokenId), ("eos_token", eosTokenId), ("unk_token", unknownTokenId), ("pad_token", paddingTokenId)] {
            if let id, tokens.indices.contains(id) { c[key] = tokens[id] }
        }
        return c
    }
}
