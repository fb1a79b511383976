import Foundation
import TestSupport
import XCTest

/// `lora generate --chat [--system TEXT]` on the default model against transformers: the prompt rendered with
/// the GGUF's own chat template and encoded without extra special tokens must continue exactly as
/// `model.generate(tokenizer.apply_chat_template(messages, add_generation_prompt=True))` does greedily
/// (Tests/Fixtures/chat-templates/chat-generation.json).
final class ChatCLITests: XCTestCase {
    var lora: URL { TestPaths.loraBinary }

    private struct Reference: Decodable {
        struct Case: Decodable {
            let model: String
            let system: String?
            let prompt: String
            let greedy_tokens: [Int]
            let greedy_text: String
        }
        let cases: [Case]
    }

    private func reference(system: String?, prompt: String) throws -> Reference.Case {
        let model = "default"
        let data = try Data(contentsOf: TestPaths.fixture("chat-templates/chat-generation.json"))
        let ref = try JSONDecoder().decode(Reference.self, from: data)
        return try XCTUnwrap(ref.cases.first { $0.model == model && $0.system == system && $0.prompt == prompt })
    }

    private func generate(_ prompt: String, system: String?) throws -> (text: String, tokens: [Int], finish: String) {
        let model = try TestPaths.requireDefaultModel()
        var args = ["generate", "--model", model.path, "--chat", "--max-tokens", "16", "--json"]
        if let system { args += ["--system", system] }
        let r = try runProcess(lora, args + [prompt])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        return (obj["text"] as? String ?? "", obj["tokens"] as? [Int] ?? [], obj["finish_reason"] as? String ?? "")
    }

    func testGenerateChatAnswersTheCapitalOfFranceWithParisLikeTransformers() throws {
        let ref = try reference(system: nil, prompt: "What is the capital of France?")
        let out = try generate("What is the capital of France?", system: nil)
        XCTAssertTrue(out.text.contains("Paris"), "got \(out.text)")
        XCTAssertEqual(out.tokens, ref.greedy_tokens)
        XCTAssertEqual(out.text, ref.greedy_text)
        XCTAssertEqual(out.finish, "stop", "the reply ends with the template's <|im_end|>, the model's EOS")
    }

    func testSystemMessageReachesTheModelAsTransformersRendersIt() throws {
        let plain = try generate("Say hello.", system: nil)
        let french = try generate("Say hello.", system: "Always answer in French.")
        XCTAssertEqual(plain.tokens, try reference(system: nil, prompt: "Say hello.").greedy_tokens)
        XCTAssertEqual(french.tokens, try reference(system: "Always answer in French.", prompt: "Say hello.").greedy_tokens)
        XCTAssertTrue(french.text.hasPrefix("Bonjour"), "got \(french.text)")
        XCTAssertNotEqual(plain.text, french.text)
    }

    func testSystemWithoutChatIsRefused() throws {
        let model = try TestPaths.requireDefaultModel()
        let r = try runProcess(lora, ["generate", "--model", model.path, "--system", "Be brief.", "hi"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--system needs --chat"), r.stderr)
    }
}

extension ChatCLITests {
    /// The tiny HF model's chat_template.jinja path (tokenizer_config special tokens, HF directory) against transformers.
    func testGenerateChatOnTheTinyHFModelEqualsTransformersGreedyTokens() throws {
        let data = try Data(contentsOf: TestPaths.fixture("chat-templates/chat-generation.json"))
        let ref = try JSONDecoder().decode(Reference.self, from: data)
        let c = try XCTUnwrap(ref.cases.first { $0.model == "models/tiny-llama-tied" })
        let r = try runProcess(lora, ["generate", "--model", TestPaths.fixture("models/tiny-llama-tied").path, "--quant", "none",
                                      "--chat", "--system", c.system ?? "", "--max-tokens", "\(c.greedy_tokens.count)", "--json", c.prompt])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(obj["tokens"] as? [Int], c.greedy_tokens)
    }
}
