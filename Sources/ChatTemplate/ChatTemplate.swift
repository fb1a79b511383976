/// A model's chat template (Jinja source), parsed once and rendered like transformers'
/// `apply_chat_template(tokenize=False)`.
///
/// The rendering context is what transformers passes (chat_template_utils.py `render_jinja_template`):
/// `messages`, `add_generation_prompt`, `tools` and `documents` (None when not given), the special
/// tokens (`bos_token`, `eos_token`; left undefined when the model has none) and any `extra` variables,
/// which override the others. Globals: `raise_exception`, `strftime_now`, `namespace`, `dict`, `range`.
///
/// A class, immutable once parsed: a loaded model parses its template once and every render (every chat
/// request of `lora serve`) shares that one syntax tree; each render has its own interpreter and scopes.
public final class ChatTemplate: @unchecked Sendable {
    public let source: String
    private let nodes: [Node]

    /// Parses `source`; throws `ChatTemplateError` (with line and column) for invalid or unsupported Jinja.
    public init(_ source: String) throws {
        ChatTemplateStatistics.parseCount.wrappingAdd(1, ordering: .relaxed)
        self.source = source
        self.nodes = try JinjaParser.parse(source)
    }

    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: JinjaValue] = [:]) throws -> String {
        let list = JinjaValue.array(messages.map { .object(JinjaObject([("role", .string($0.role)), ("content", .string($0.content))])) })
        return try render(messages: list, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken, eosToken: eosToken, extra: extra)
    }

    /// Renders messages given as Jinja values (for messages with fields beyond role and content).
    public func render(messages: JinjaValue, addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: JinjaValue] = [:]) throws -> String {
        var context: [String: JinjaValue] = [
            "messages": messages,
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none,
            "documents": .none,
        ]
        if let bosToken { context["bos_token"] = .string(bosToken) }
        if let eosToken { context["eos_token"] = .string(eosToken) }
        for (k, v) in extra { context[k] = v }
        return try JinjaInterpreter().render(nodes, globals: context)
    }

    /// The rendered conversation (add_generation_prompt false) and, for each assistant message, the
    /// UTF-8 byte range of its span: the text between the rendering of `messages[..<i]` with the
    /// generation prompt and the rendering of `messages[...i]` (the chat-data loss-mask rule).
    /// Throws `ChatTemplateSpanError` when those renderings are not prefixes of the whole conversation.
    public func renderWithAssistantSpans(messages: [ChatMessage], bosToken: String?, eosToken: String?,
                                         extra: [String: JinjaValue] = [:]) throws -> (text: String, spans: [AssistantSpan]) {
        let full = try render(messages: messages, addGenerationPrompt: false, bosToken: bosToken, eosToken: eosToken, extra: extra)
        let fullBytes = Array(full.utf8)
        var spans: [AssistantSpan] = []
        for (i, m) in messages.enumerated() where m.role == "assistant" {
            let before = try render(messages: Array(messages[..<i]), addGenerationPrompt: true, bosToken: bosToken, eosToken: eosToken, extra: extra)
            let through = try render(messages: Array(messages[...i]), addGenerationPrompt: false, bosToken: bosToken, eosToken: eosToken, extra: extra)
            let b = Array(before.utf8), t = Array(through.utf8)
            guard fullBytes.starts(with: b), fullBytes.starts(with: t), t.count >= b.count else {
                throw ChatTemplateSpanError(messageIndex: i)
            }
            spans.append(AssistantSpan(messageIndex: i, utf8Range: b.count..<t.count))
        }
        return (full, spans)
    }
}

/// An assistant message's rendered text, as a UTF-8 byte range of the whole rendered conversation.
public struct AssistantSpan: Sendable, Equatable {
    public var messageIndex: Int
    public var utf8Range: Range<Int>
}

/// The template renders a conversation prefix differently from the start of the whole conversation,
/// so the assistant span of `messageIndex` is not defined.
public struct ChatTemplateSpanError: Error, Equatable, CustomStringConvertible {
    public var messageIndex: Int
    public init(messageIndex: Int) { self.messageIndex = messageIndex }
    public var description: String {
        "the chat template's rendering of messages[..<\(messageIndex)] (with the generation prompt) or messages[...\(messageIndex)] "
            + "is not a prefix of the whole conversation's rendering, so assistant message \(messageIndex) has no span"
    }
}
