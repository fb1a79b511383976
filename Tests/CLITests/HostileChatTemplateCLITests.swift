import Foundation
import TestSupport
import XCTest

/// A chat template is code from whoever published the model: a recursive macro in a GGUF's
/// `tokenizer.chat_template` or an HF `chat_template.jinja` makes `lora generate --chat` exit with a
/// limit error naming the line and column, not SIGSEGV.
final class HostileChatTemplateCLITests: TemporaryDirectoryTestCase {
    let recursive = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"

    private func assertLimitError(_ model: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try runProcess(TestPaths.loraBinary, ["generate", "--model", model.path, "--chat", "--max-tokens", "1", "hi"])
        XCTAssertEqual(r.status, 1, "expected a clean error exit: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains("chat template exceeds a limit at line 1") && r.stderr.contains("maxRenderDepth"),
                      r.stderr, file: file, line: line)
    }

    /// The template is swapped in place: the new string is padded to the old length plus a multiple of
    /// the 32-byte alignment, so the data section moves by whole alignment units and its offsets stay valid.
    func testRecursiveMacroInAGGUFChatTemplateIsALimitError() throws {
        var bytes = try Data(contentsOf: try TestPaths.requireDefaultModel())
        let at = try XCTUnwrap(bytes.range(of: Data("tokenizer.chat_template".utf8))).upperBound
        XCTAssertEqual(bytes[at..<at + 4], Data([8, 0, 0, 0]), "expected a string value")
        let oldLength = bytes[at + 4..<at + 12].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var template = recursive
        let grow = max(0, template.utf8.count - oldLength)
        template += String(repeating: " ", count: oldLength + (grow + 31) / 32 * 32 - template.utf8.count)
        var replacement = Data()
        withUnsafeBytes(of: UInt64(template.utf8.count).littleEndian) { replacement.append(contentsOf: $0) }
        replacement.append(Data(template.utf8))
        bytes.replaceSubrange(at + 4..<at + 12 + oldLength, with: replacement)
        let url = dir.appendingPathComponent("hostile.gguf")
        try bytes.write(to: url)
        try assertLimitError(url)
    }

    func testRecursiveMacroInAnHFChatTemplateFileIsALimitError() throws {
        let model = dir.appendingPathComponent("hf")
        try FileManager.default.copyItem(at: TestPaths.fixture("models/tiny-llama-tied"), to: model)
        try Data(recursive.utf8).write(to: model.appendingPathComponent("chat_template.jinja"))
        try assertLimitError(model)
    }

    /// The template is parsed once, when the model loads: one that does not parse fails `--chat` before
    /// anything is generated, naming line and column, and leaves plain prompts working.
    func testAnUnparseableChatTemplateFailsChatAtLoadAndPlainPromptsStillRun() throws {
        let model = dir.appendingPathComponent("hf")
        try FileManager.default.copyItem(at: TestPaths.fixture("models/tiny-llama-tied"), to: model)
        try Data("{% for m in messages %}\n{{ m.content }".utf8).write(to: model.appendingPathComponent("chat_template.jinja"))
        let chat = try runProcess(TestPaths.loraBinary, ["generate", "--model", model.path, "--chat", "--max-tokens", "1", "hi"])
        XCTAssertEqual(chat.status, 1, chat.stderr)
        XCTAssertTrue(chat.stderr.contains("chat template syntax error at line 2, column"), chat.stderr)
        let plain = try runProcess(TestPaths.loraBinary, ["generate", "--model", model.path, "--max-tokens", "1", "hi"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
    }
}

/// A tokenizer whose ids go past the model's vocab_size (embedding rows) is refused when the model
/// loads, naming the tokenizer file and both sizes, instead of indexing past the embedding table.
final class TokenizerVocabularyCLITests: XCTestCase {
    func testTokenIdBeyondTheModelsVocabSizeIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vocab-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: TestPaths.fixture("models/tiny-llama-tied"), to: dir)
        let url = dir.appendingPathComponent("tokenizer.json")
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var added = json["added_tokens"] as? [[String: Any]] ?? []
        added.append(["id": 500, "content": "<|extra|>", "special": true, "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false])
        json["added_tokens"] = added
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        let r = try runProcess(TestPaths.loraBinary, ["generate", "--model", dir.path, "--max-tokens", "1", "hi"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(url.path) && r.stderr.contains("500") && r.stderr.contains("384"), r.stderr)
    }
}
