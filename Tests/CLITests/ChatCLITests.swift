import Foundation
import TestSupport
import XCTest

/// `lora generate --chat [--system TEXT]` on the default model against transformers: the prompt rendered with
/// the GGUF's own chat template and encoded without extra special tokens must continue exactly as
/// `model.generate(tokenizer.apply_chat_template(messages, add_generation_prompt=True))` does greedily
/// (Tests/Fixtures/chat-templates/chat-generation.json), with fp32 decode activations
/// (`LORA_DECODE_ACTIVATIONS=f32`: ours and transformers differ only in summation order).
///
/// Under the default (int8 activations in the layers, two-digit ones in the head, `DecodeActivations.q8`; the
/// same answers as `q8-f32head`, whose head keeps fp32 inputs: the difference below comes from the layers) a
/// near-tie in transformers' own logits may go the other way: "Say hello." continues "Hello" and then
/// transformers' top two are " there" and "!" 0.00025 apart (1e-5 of that step's largest logit; the fixture's
/// `top2`), and the int8 inputs pick "!" (before the SIMD RMSNorm they followed " there, welcome to my" and took
/// " little" at the next near-tie, 0.048 apart). So under the default the continuation must equal
/// transformers' up to its first difference, and there be transformers' runner-up (`assertFollowsTransformers`).
final class ChatCLITests: XCTestCase {
    var lora: URL { TestPaths.loraBinary }

    private struct Reference: Decodable {
        struct Case: Decodable {
            let model: String
            let system: String?
            let prompt: String
            let greedy_tokens: [Int]
            let greedy_text: String
            /// Per generated token: transformers' first id, runner-up id, their logit gap, max |logit|.
            let top2: [[Double]]
        }
        let cases: [Case]
    }

    private func reference(system: String?, prompt: String) throws -> Reference.Case {
        let model = "default"
        let data = try Data(contentsOf: TestPaths.fixture("chat-templates/chat-generation.json"))
        let ref = try JSONDecoder().decode(Reference.self, from: data)
        return try XCTUnwrap(ref.cases.first { $0.model == model && $0.system == system && $0.prompt == prompt })
    }

    /// `activations`: the `LORA_DECODE_ACTIVATIONS` of the child (nil: unset, the default).
    private func generate(_ prompt: String, system: String?, activations: String?) throws -> (text: String, tokens: [Int], finish: String) {
        let model = try TestPaths.requireDefaultModel()
        var args = ["generate", "--model", model.path, "--chat", "--max-tokens", "16", "--json"]
        if let system { args += ["--system", system] }
        var env = ProcessInfo.processInfo.environment
        env["LORA_DECODE_ACTIVATIONS"] = activations
        let r = try runProcess(lora, args + [prompt], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        return (obj["text"] as? String ?? "", obj["tokens"] as? [Int] ?? [], obj["finish_reason"] as? String ?? "")
    }

    /// `tokens` equal transformers' greedy tokens up to their first difference, and there are transformers'
    /// runner-up at that step (a near-tie gone the other way); nothing is checked after it (the contexts differ).
    private func assertFollowsTransformers(_ tokens: [Int], _ ref: Reference.Case, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(tokens.count, ref.greedy_tokens.count, file: file, line: line)
        for (i, (ours, theirs)) in zip(tokens, ref.greedy_tokens).enumerated() where ours != theirs {
            XCTAssertEqual(ours, Int(ref.top2[i][1]), "token \(i): ours \(ours), transformers' top two \(ref.top2[i])",
                           file: file, line: line)
            return
        }
    }

    func testGenerateChatAnswersTheCapitalOfFranceWithParisLikeTransformers() throws {
        let ref = try reference(system: nil, prompt: "What is the capital of France?")
        for activations in [nil, "f32"] {
            let out = try generate("What is the capital of France?", system: nil, activations: activations)
            XCTAssertTrue(out.text.contains("Paris"), "got \(out.text)")
            XCTAssertEqual(out.tokens, ref.greedy_tokens, "activations \(activations ?? "default")")
            XCTAssertEqual(out.text, ref.greedy_text)
            XCTAssertEqual(out.finish, "stop", "the reply ends with the template's <|im_end|>, the model's EOS")
        }
    }

    func testSystemMessageReachesTheModelAsTransformersRendersIt() throws {
        let plainRef = try reference(system: nil, prompt: "Say hello.")
        let frenchRef = try reference(system: "Always answer in French.", prompt: "Say hello.")
        for activations in [nil, "f32"] {
            let plain = try generate("Say hello.", system: nil, activations: activations)
            let french = try generate("Say hello.", system: "Always answer in French.", activations: activations)
            if activations == "f32" {
                XCTAssertEqual(plain.tokens, plainRef.greedy_tokens)
                XCTAssertEqual(french.tokens, frenchRef.greedy_tokens)
            } else {
                assertFollowsTransformers(plain.tokens, plainRef)
                assertFollowsTransformers(french.tokens, frenchRef)
            }
            XCTAssertTrue(french.text.hasPrefix("Bonjour"), "got \(french.text)")
            XCTAssertNotEqual(plain.text, french.text)
        }
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
