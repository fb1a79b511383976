import Foundation

/// A tokenizer whose ids equal HF `tokenizers`' for the supported configurations: BPE models
/// (byte-level as GPT-2 / SmolLM / Llama 3 / Qwen2, or SentencePiece-style with byte fallback),
/// with their normalizers, pre-tokenizers, added tokens, post-processors and decoders.
///
/// Build it from a `tokenizer.json` (+ `tokenizer_config.json`), a model directory, or GGUF
/// metadata. Encoding is thread-safe (the per-word cache is locked).
public final class Tokenizer: @unchecked Sendable {
    let model: BPEModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: Decoder?
    let addedById: [Int: AddedToken]
    let addedByContent: [String: AddedToken]
    /// Added tokens matched in the raw text, and those matched after normalization.
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    /// The text `decode` uses for added tokens matched in normalized text: their normalized content.
    private let addedDecodeContent: [Int: String]

    /// Number of ids: one more than the largest id of the vocabulary and the added tokens.
    public let vocabSize: Int
    public let bosTokenId: Int?
    public let eosTokenId: Int?
    /// The chat template (Jinja source), when the tokenizer's files or metadata carry one.
    public let chatTemplate: String?

    struct Parts {
        var model: BPEModel
        var normalizer: Normalizer?
        var preTokenizer: PreTokenizer?
        var postProcessor: PostProcessor?
        var decoder: Decoder?
        var addedTokens: [AddedToken]
        var bosTokenId: Int?
        var eosTokenId: Int?
        var chatTemplate: String?
    }

    init(parts p: Parts) {
        model = p.model
        normalizer = p.normalizer
        preTokenizer = p.preTokenizer
        postProcessor = p.postProcessor
        decoder = p.decoder
        var byId: [Int: AddedToken] = [:], byContent: [String: AddedToken] = [:]
        for t in p.addedTokens {
            byId[t.id] = t
            byContent[t.content] = t
        }
        addedById = byId
        addedByContent = byContent
        rawMatcher = AddedTokenMatcher(p.addedTokens.filter { !$0.normalized })
        // Tokens with `normalized` are matched in normalized text by their normalized content (HF
        // AddedVocabulary builds that trie from normalized contents: with Llama 2's Prepend("▁")
        // normalizer, "[[a b]]" is looked for as "▁[[a▁b]]").
        let normalizedTokens = p.addedTokens.filter { $0.normalized }.map { t in
            guard let n = p.normalizer else { return t }
            var m = t
            m.content = String(String.UnicodeScalarView(n.apply(Array(t.content.unicodeScalars))))
            return m
        }
        normalizedMatcher = AddedTokenMatcher(normalizedTokens)
        // HF decodes such a token from its normalized content too ("▁[[a▁b]]" -> " [[a b]]").
        var decodeContent: [Int: String] = [:]
        for t in normalizedTokens { decodeContent[t.id] = t.content }
        addedDecodeContent = decodeContent
        vocabSize = max(p.model.maxId, p.addedTokens.map(\.id).max() ?? -1) + 1
        bosTokenId = p.bosTokenId
        eosTokenId = p.eosTokenId
        chatTemplate = p.chatTemplate
    }

    // MARK: Encoding

    /// The ids of `text`. With `addSpecialTokens`, the post-processor adds its special tokens (BOS / EOS)
    /// as HF's `encode(text, add_special_tokens=True)` does. Special-token strings in the text are
    /// always recognized.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        var segments: [Segment] = []
        rawMatcher.split(Piece(scalars: Array(text.unicodeScalars), atStart: true), into: &segments)
        for segment in segments {
            switch segment {
            case let .token(id):
                ids.append(id)
            case let .text(piece):
                var p = piece
                if let normalizer { p.scalars = normalizer.apply(p.scalars) }
                if normalizedMatcher.isEmpty {
                    encodeNormalized(p, into: &ids)
                } else {
                    var inner: [Segment] = []
                    normalizedMatcher.split(p, into: &inner)
                    for s in inner {
                        switch s {
                        case let .token(id): ids.append(id)
                        case let .text(q): encodeNormalized(q, into: &ids)
                        }
                    }
                }
            }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.apply(ids) }
        return ids
    }

    private func encodeNormalized(_ piece: Piece, into ids: inout [Int]) {
        guard let preTokenizer else {
            model.tokenize(piece.scalars, into: &ids)
            return
        }
        for word in preTokenizer.apply([piece]) { model.tokenize(word.scalars, into: &ids) }
    }

    // MARK: Decoding

    /// The text of `ids` (HF `decode`): unknown ids are dropped, special tokens too with `skipSpecialTokens`.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens, let a = addedById[id], a.special { continue }
            guard let t = addedDecodeContent[id] ?? token(forId: id) else { continue }
            tokens.append(t)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens)
    }

    // MARK: Vocabulary

    /// The token string of an id (added tokens first, then the model's vocabulary), as stored (byte-level form).
    public func token(forId id: Int) -> String? {
        if let a = addedById[id] { return a.content }
        guard id >= 0, id < model.tokens.count else { return nil }
        let t = model.tokens[id]
        return t.isEmpty ? nil : t
    }

    /// The id of a token string (added tokens first, then the model's vocabulary).
    public func id(forToken token: String) -> Int? {
        if let a = addedByContent[token] { return a.id }
        return model.vocab[token]
    }

    /// Whether the id is a special added token (skipped by `decode(_:skipSpecialTokens: true)`).
    public func isSpecial(_ id: Int) -> Bool {
        addedById[id]?.special ?? false
    }
}
