import Foundation

/// An HF tokenizer described as GGUF metadata (`tokenizer.ggml.*`), for `lora merge --format gguf`
/// from an HF checkpoint: the inverse of `Tokenizer(gguf:)` for byte-level BPE.
///
/// The layout is what llama.cpp's converter writes for a byte-level BPE vocabulary
/// (convert_hf_to_gguf.py `get_vocab_base` / `_set_vocab_gpt2`, gguf-py `SpecialVocab`):
/// `tokens[id]` is the vocabulary's byte-level string or an added token's content, an id with no
/// token is written `[PAD{id}]` with type 5 (unused); special added tokens have type 3 (control),
/// other added tokens type 4 (user-defined), the rest type 1 (normal); merges are "left right" in
/// rank order; bos / eos / unk / pad ids come from `tokenizer_config.json`. `tokenizer.ggml.pre`
/// names the pre-tokenizer llama.cpp must use; only the pre-tokenizers `Tokenizer(gguf:)` reads
/// back to the same tokenizer are written, anything else is refused naming `pre_tokenizer`, so a
/// GGUF written here tokenizes as its source did (ours and llama.cpp's).
extension GGUFTokenizerData {
    public init(tokenizerJSON: URL, tokenizerConfig: URL?, vocabularySize: Int, chatTemplate: String?) throws {
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON, tokenizerConfig: tokenizerConfig)
        var configObject: [String: Any] = [:]
        if let tokenizerConfig { configObject = try JSONFields.object(try Tokenizer.read(tokenizerConfig), file: tokenizerConfig.path) }
        try self.init(tokenizer: tokenizer, config: configObject, configName: tokenizerConfig?.path ?? "tokenizer_config.json",
                      source: tokenizerJSON.path, vocabularySize: vocabularySize, chatTemplate: chatTemplate ?? tokenizer.chatTemplate)
    }

    init(tokenizer t: Tokenizer, config: [String: Any], configName: String, source: String, vocabularySize: Int,
         chatTemplate: String?) throws {
        guard case .byteLevel? = t.decoder else {
            throw TokenizerError.unsupported(file: source, field: "decoder",
                                             value: "not ByteLevel (only byte-level BPE tokenizers can be written as GGUF metadata here)")
        }
        let pre = try Self.ggufPre(t, source: source)
        // llama.cpp ignores merges for the Llama 3 pre-tokenizer and for no other (llama-vocab.cpp).
        guard t.model.ignoreMerges == (pre == "llama-bpe") else {
            throw TokenizerError.unsupported(file: source, field: "model.ignore_merges",
                                             value: "\(t.model.ignoreMerges) with this pre-tokenizer (llama.cpp's \(pre) uses \(pre == "llama-bpe"))")
        }
        guard t.vocabSize <= vocabularySize else {
            throw TokenizerError.invalidField(file: source, field: "model.vocab",
                                              reason: "token id \(t.vocabSize - 1) is outside the model's vocab_size \(vocabularySize)")
        }
        // GGUF metadata has no place for an added token's matching flags.
        for a in t.addedById.values.sorted(by: { $0.id < $1.id }) where a.lstrip || a.rstrip || a.singleWord {
            let flag = a.lstrip ? "lstrip" : (a.rstrip ? "rstrip" : "single_word")
            throw TokenizerError.unsupported(file: source, field: "added_tokens (id \(a.id), \(a.content.debugDescription)).\(flag)",
                                             value: "true (GGUF tokenizer metadata cannot express it)")
        }
        var tokens: [String] = [], types: [Int32] = []
        tokens.reserveCapacity(vocabularySize)
        types.reserveCapacity(vocabularySize)
        for id in 0..<vocabularySize {
            if let added = t.addedById[id] {
                tokens.append(added.content)
                types.append(added.special ? 3 : 4)
            } else if id < t.model.tokens.count, !t.model.tokens[id].isEmpty {
                tokens.append(t.model.tokens[id])
                types.append(1)
            } else {
                tokens.append("[PAD\(id)]")
                types.append(5)
            }
        }
        let merges = t.model.rankedMerges.map { "\(t.model.tokens[$0.0]) \(t.model.tokens[$0.1])" }

        let f = JSONFields(file: configName)
        func configId(_ key: String) throws -> Int? {
            guard let v = config[key], !f.isNull(v) else { return nil }
            let content: String
            if let s = v as? String { content = s } else if let o = (v as? JSONObject)?.fields {
                content = try f.string(o["content"], "\(key).content")
            } else {
                throw f.invalid(key, "expected a string or an object with `content`")
            }
            guard let id = t.id(forToken: content) else { throw f.invalid(key, "\(content.debugDescription) is not a token of the tokenizer") }
            return id
        }
        // What the post-processor adds around a sequence: nothing, or BOS before and/or EOS after.
        var addBos = false, addEos = false
        if let post = t.postProcessor {
            let added = post.addedIds
            switch added.prefix {
            case []: break
            case [t.bosTokenId ?? -1]: addBos = true
            default:
                throw TokenizerError.unsupported(file: source, field: "post_processor",
                                                 value: "adds \(added.prefix) before the text (GGUF can only say add_bos_token)")
            }
            switch added.suffix {
            case []: break
            case [t.eosTokenId ?? -1]: addEos = true
            default:
                throw TokenizerError.unsupported(file: source, field: "post_processor",
                                                 value: "adds \(added.suffix) after the text (GGUF can only say add_eos_token)")
            }
        }
        self.init(model: "gpt2", pre: pre, tokens: tokens, tokenTypes: types, merges: merges,
                  bosTokenId: t.bosTokenId, eosTokenId: t.eosTokenId,
                  unknownTokenId: try configId("unk_token"), paddingTokenId: try configId("pad_token"),
                  addBosToken: addBos, addEosToken: addEos, chatTemplate: chatTemplate)
    }

    /// The llama.cpp pre-tokenizer name whose behaviour (as `Tokenizer(gguf:)` and llama-vocab.cpp
    /// define it) equals this tokenizer's normalizer + pre-tokenizer.
    static func ggufPre(_ t: Tokenizer, source: String) throws -> String {
        func refuse(_ what: String) -> TokenizerError {
            TokenizerError.unsupported(file: source, field: what,
                                       value: "has no llama.cpp tokenizer.ggml.pre equivalent (supported: ByteLevel, Digits + ByteLevel, the Llama 3 and Qwen2 splits)")
        }
        switch (t.normalizer, t.preTokenizer) {
        case (nil, .byteLevel(addPrefixSpace: false, useRegex: true)?):
            return "gpt-2" // llama-vocab.cpp's name for the GPT-2 split ("gpt2" is not one)
        case let (nil, .sequence(steps)?):
            if steps.count == 2, case .digits(individual: true) = steps[0], case .byteLevel(addPrefixSpace: false, useRegex: true) = steps[1] {
                return "smollm"
            }
            if steps.count == 2, case .split(.pattern(.llama3(maxDigits: 3)), .isolated, invert: false) = steps[0],
               case .byteLevel(addPrefixSpace: false, useRegex: false) = steps[1] {
                return "llama-bpe"
            }
            throw refuse("pre_tokenizer")
        case let (.nfc?, .sequence(steps)?):
            if steps.count == 2, case .split(.pattern(.llama3(maxDigits: 1)), .isolated, invert: false) = steps[0],
               case .byteLevel(addPrefixSpace: false, useRegex: false) = steps[1] {
                return "qwen2"
            }
            throw refuse("pre_tokenizer")
        case (nil, _):
            throw refuse("pre_tokenizer")
        default:
            throw refuse("normalizer")
        }
    }
}
