import ChatTemplate
import Foundation
import TestSupport
import XCTest

/// What callers rely on beyond byte equality: the system message, assistant spans for loss masks, and
/// that templates are interpreted (an edited template renders its edit).
final class ChatTemplateBehaviourTests: XCTestCase {
    private func smolLM2() throws -> ChatTemplate {
        try ChatTemplate(String(contentsOf: TestPaths.fixture("chat-templates/templates/smollm2.jinja"), encoding: .utf8))
    }

    func testSystemMessageReplacesSmolLM2sDefaultSystemPrompt() throws {
        let t = try smolLM2()
        let user = ChatMessage(role: "user", content: "What is the capital of France?")
        let plain = try t.render(messages: [user], addGenerationPrompt: true, bosToken: "<|im_start|>", eosToken: "<|im_end|>")
        let withSystem = try t.render(messages: [ChatMessage(role: "system", content: "Always answer in French."), user],
                                      addGenerationPrompt: true, bosToken: "<|im_start|>", eosToken: "<|im_end|>")
        XCTAssertTrue(plain.hasPrefix("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"), plain)
        XCTAssertEqual(withSystem, "<|im_start|>system\nAlways answer in French.<|im_end|>\n"
            + "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    }

    func testAssistantSpansCoverEachAssistantReplyAndItsEndToken() throws {
        let t = try smolLM2()
        let messages = [ChatMessage(role: "user", content: "Hi"), ChatMessage(role: "assistant", content: "Hello!"),
                        ChatMessage(role: "user", content: "Bye"), ChatMessage(role: "assistant", content: "Ciao")]
        let (text, spans) = try t.renderWithAssistantSpans(messages: messages, bosToken: nil, eosToken: nil)
        let bytes = Array(text.utf8)
        XCTAssertEqual(spans.map(\.messageIndex), [1, 3])
        let pieces = spans.map { String(decoding: bytes[$0.utf8Range], as: UTF8.self) }
        XCTAssertEqual(pieces, ["Hello!<|im_end|>\n", "Ciao<|im_end|>\n"])
    }

    func testAssistantSpansAreRefusedWhenPrefixesDoNotMatch() throws {
        // A template that renders the message count first: no rendering of a prefix is a prefix of the whole.
        let t = try ChatTemplate("{{ messages | length }}{% for m in messages %}{{ m.content }}{% endfor %}")
        XCTAssertThrowsError(try t.renderWithAssistantSpans(
            messages: [ChatMessage(role: "user", content: "a"), ChatMessage(role: "assistant", content: "b")], bosToken: nil, eosToken: nil)) {
            XCTAssertEqual($0 as? ChatTemplateSpanError, ChatTemplateSpanError(messageIndex: 1))
        }
    }

    func testAnEditedTemplateRendersItsEdit() throws {
        let source = try String(contentsOf: TestPaths.fixture("chat-templates/templates/smollm2.jinja"), encoding: .utf8)
            .replacingOccurrences(of: "<|im_start|>", with: "<<turn>>")
        let out = try ChatTemplate(source).render(messages: [ChatMessage(role: "system", content: "S")], addGenerationPrompt: true,
                                                  bosToken: nil, eosToken: nil)
        XCTAssertEqual(out, "<<turn>>system\nS<|im_end|>\n<<turn>>assistant\n")
    }

    func testBosAndEosAreUndefinedWhenTheModelHasNone() throws {
        let t = try ChatTemplate("[{{ bos_token }}]{{ bos_token is defined }}{{ eos_token }}{{ tools is none }}{{ documents is none }}")
        XCTAssertEqual(try t.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: "</s>"), "[]False</s>TrueTrue")
    }

    func testExtraVariablesAndMessagesWithMoreFields() throws {
        let t = try ChatTemplate("{{ date_string }}|{% for m in messages %}{{ m.role }}:{{ m.content }}{% if m.tool_calls %}+{{ m.tool_calls | length }}{% endif %};{% endfor %}")
        let messages: JinjaValue = [["role": "user", "content": "q"], ["role": "assistant", "content": "", "tool_calls": [["id": "1"]]]]
        let out = try t.render(messages: messages, addGenerationPrompt: false, bosToken: nil, eosToken: nil,
                               extra: ["date_string": "26 Jul 2024"])
        XCTAssertEqual(out, "26 Jul 2024|user:q;assistant:+1;")
    }

    func testJSONValuesKeepKeyOrder() throws {
        let v = try JinjaValue(json: #"{"z": 1, "a": [true, null, 2.5, "\u00e9\n"]}"#)
        let out = try ChatTemplate("{{ v | tojson }}|{% for k in v %}{{ k }}{% endfor %}").render(
            messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil, extra: ["v": v])
        XCTAssertEqual(out, "{\"z\": 1, \"a\": [true, null, 2.5, \"é\\n\"]}|za")
    }

    /// Regression (Fuzz/ fuzz-peft-config): a high surrogate followed by an escape that is not a low
    /// surrogate overflowed the pair arithmetic and trapped. Each lone half is U+FFFD; a pair after it
    /// still combines.
    func testJSONLoneHighSurrogateBeforeAnotherEscapeIsReplacementCharacter() throws {
        XCTAssertEqual(try JinjaValue(json: #""\udbad\udbad\b""#), .string("\u{FFFD}\u{FFFD}\u{8}"))
        XCTAssertEqual(try JinjaValue(json: #""\ud83d\u0041\ud83d\ude00""#), .string("\u{FFFD}A\u{1F600}"))
    }
}
