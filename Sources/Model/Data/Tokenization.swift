import ChatTemplate
import Tokenizer

/// What chat records are rendered with: the model's chat template and its BOS / EOS strings.
public struct ChatFormat {
    public var template: ChatTemplate
    public var bosToken: String?
    public var eosToken: String?

    public init(template: ChatTemplate, bosToken: String?, eosToken: String?) {
        self.template = template; self.bosToken = bosToken; self.eosToken = eosToken
    }

    public init(template: ChatTemplate, tokenizer: Tokenizer) {
        self.init(template: template, bosToken: tokenizer.bosTokenId.flatMap { tokenizer.token(forId: $0) },
                  eosToken: tokenizer.eosTokenId.flatMap { tokenizer.token(forId: $0) })
    }
}

extension TextRecord {
    /// The token sequence and scored positions of a record, as `lora score` and `lora train` define them:
    /// - `text`: encode(text) with the tokenizer's own special tokens; every token after the first is scored.
    /// - `prompt`/`completion`: encode(prompt) with special tokens + encode(completion) without + EOS;
    ///   the completion's tokens and the EOS are scored.
    public func tokenize(with tokenizer: Tokenizer, eosTokenId: Int, chat: ChatFormat? = nil) throws -> TokenizedRecord {
        switch self {
        case let .chat(messages, scoredMessages):
            guard let chat else { throw ModelError.invalidArgument("chat records need the model's chat template, and it has none") }
            return try Self.tokenizeChat(messages, scoredMessages, tokenizer: tokenizer, chat: chat)
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

    /// The rendered conversation (add_generation_prompt false) is encoded without adding special
    /// tokens (the template holds them); a token is scored when all of its characters lie in the
    /// span of a scored assistant message. Token byte ranges come from decoding token by token.
    static func tokenizeChat(_ messages: [ChatMessage], _ scoredMessages: [Bool], tokenizer: Tokenizer,
                             chat: ChatFormat) throws -> TokenizedRecord {
        let (text, spans) = try chat.template.renderWithAssistantSpans(messages: messages, bosToken: chat.bosToken, eosToken: chat.eosToken)
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        // End byte offset of each token in the decoded text; a token that completes no character yet
        // (part of a multi-byte character) ends where the token completing it ends.
        var ends = [Int](repeating: 0, count: ids.count)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var decoded = ""
        var offset = 0
        var pending: [Int] = []
        for (k, id) in ids.enumerated() {
            let piece = decoder.push(id)
            decoded += piece
            offset += piece.utf8.count
            pending.append(k)
            if !piece.isEmpty { for j in pending { ends[j] = offset }; pending.removeAll() }
        }
        let tail = decoder.finish()
        decoded += tail
        offset += tail.utf8.count
        for j in pending { ends[j] = offset }
        guard decoded == text else {
            throw ModelError.invalidArgument("the tokenizer does not decode this rendered conversation back to itself, so its assistant spans cannot be located")
        }
        let scoredSpans = spans.filter { scoredMessages[$0.messageIndex] }.map(\.utf8Range)
        var scored = [Bool](repeating: false, count: ids.count)
        var starts = [Int](repeating: 0, count: ids.count)
        for k in ids.indices {
            // Tokens that end together (pieces of one character) share their start too.
            starts[k] = k == 0 ? 0 : (ends[k - 1] == ends[k] ? starts[k - 1] : ends[k - 1])
            let range = starts[k]..<ends[k]
            if k > 0, !range.isEmpty, scoredSpans.contains(where: { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound }) {
                scored[k] = true
            }
        }
        return TokenizedRecord(tokens: ids, scored: scored)
    }
}
