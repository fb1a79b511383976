/// Decodes ids one at a time, returning text only once it is complete: a character whose UTF-8
/// bytes are split across tokens is held back until its last byte arrives.
///
/// The algorithm is HF `tokenizers`' DecodeStream: decode the ids since the last emitted boundary,
/// and emit what extends the previously emitted prefix unless the text ends in U+FFFD (an incomplete
/// sequence). Decoding a window rather than single tokens keeps decoders that look at neighbours
/// (SentencePiece's leading-space removal, byte fallback) correct.
public struct StreamingDecoder {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    /// Ids whose text is not fully emitted, preceded by `prefixCount` ids whose text is (`prefix`).
    private var ids: [Int] = []
    private var prefix = ""
    private var prefixCount = 0

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text that became complete ("" when none did).
    public mutating func push(_ id: Int) -> String {
        ids.append(id)
        let text = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
        guard text.utf8.count > prefix.utf8.count, text.unicodeScalars.last != "\u{FFFD}" else { return "" }
        let new = Self.suffix(of: text, after: prefix)
        // Keep the ids that produced `new` as context for the next token, drop older ones.
        ids.removeFirst(prefixCount)
        prefixCount = ids.count
        prefix = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
        return new
    }

    /// Flushes what is held back; an incomplete UTF-8 sequence comes out as U+FFFD, as HF's decode gives it.
    public mutating func finish() -> String {
        defer { ids = []; prefix = ""; prefixCount = 0 }
        let text = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
        guard text.utf8.count > prefix.utf8.count else { return "" }
        return Self.suffix(of: text, after: prefix)
    }

    /// `text` minus its first `prefix.utf8.count` bytes (HF slices the string by byte length).
    private static func suffix(of text: String, after prefix: String) -> String {
        let u = Array(text.utf8)
        return String(decoding: u[prefix.utf8.count...], as: UTF8.self)
    }
}
