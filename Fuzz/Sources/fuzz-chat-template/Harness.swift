import Foundation
import ChatTemplate
import FuzzSupport

// Chat templates (Jinja): lexer, parser and renderer with their limits (JinjaLimits). The input is
// the template source; one that parses is rendered over a small conversation, with and without the
// generation prompt, and with the assistant-span rule chat training uses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatTemplate(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let source = String(decoding: FuzzInput.data(bytes, size), as: UTF8.self)
    guard let template = try? ChatTemplate(source) else { return 0 }
    let messages = [
        ChatMessage(role: "system", content: "Be brief."),
        ChatMessage(role: "user", content: "Hi {{ there }}"),
        ChatMessage(role: "assistant", content: "Hello."),
    ]
    _ = try? template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
    _ = try? template.renderWithAssistantSpans(messages: messages, bosToken: nil, eosToken: "</s>")
    return 0
}

/// The process entry (SwiftPM links `main` to this symbol): libFuzzer's driver over fuzzChatTemplate.
@_cdecl("fuzz_chat_template_main")
public func harnessMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzInput.runDriver(argc, argv, fuzzChatTemplate)
}
