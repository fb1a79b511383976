import Foundation
import Model
import TestSupport
import Tokenizer
import XCTest

/// An adapter exported with `lora export --format gguf` on the default model, as llama.cpp ran it
/// (scripts/fixtures/llamacpp/make_llamacpp_export_fixtures.py, Tests/Fixtures/export/llamacpp.json).
final class LlamaCppExportCLITests: JobsCLITestCase {
    struct Figures: Decodable {
        let adapter_gguf_sha256: String
        let token_ids: [Int]
        let base_nll: Double
        let adapter_nll: Double
        let prompt: String
        let base_greedy_text: String
        let adapter_greedy_text: String
    }
    struct Score: Decodable { let mean_nll: Double; let tokens: Int }
    struct Generated: Decodable { let text: String }

    func greedy(_ prompt: String, _ extra: [String]) throws -> String {
        let r = try runProcess(TestPaths.loraBinary, ["generate", "--model", TestPaths.defaultModel.path, "--max-tokens", "12", "--json", prompt] + extra,
                               environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Generated.self, from: Data(r.stdout.utf8)).text
    }

    func commonPrefix(_ a: String, _ b: String) -> Int { zip(a, b).prefix { $0 == $1 }.count }

    func score(_ extra: [String]) throws -> Score {
        let args = ["score", "--model", TestPaths.defaultModel.path, "--data", TestPaths.fixture("default-model/paragraph.jsonl").path, "--json"] + extra
        let r = try runProcess(TestPaths.loraBinary, args, environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Score.self, from: Data(r.stdout.utf8))
    }

    /// llama.cpp's NLL moves as ours does. llama.cpp multiplies Q4_1 weights by activations
    /// quantized to Q8_1 and we do not, so the two bases disagree by `e` = |NLL_ours − NLL_llama.cpp|
    /// (measured in this very test). Each of the two differences (with / without adapter) carries at
    /// most that kind of error, so the shifts agree within 2·e plus the fp32 bound of our own two runs.
    func testLlamaCppMovesTheNLLAsWeDoWithTheExportedAdapter() throws {
        let fig = try JSONDecoder().decode(Figures.self, from: Data(contentsOf: TestPaths.fixture("export/llamacpp.json")))
        try lora(["models", "add", "smollm2", TestPaths.defaultModel.path])
        try lora(["import", "fixture", TestPaths.fixture("export/adapter").path, "--base", "smollm2"])
        let out = scratch.appendingPathComponent("out")
        try lora(["export", "fixture@1", out.path, "--format", "gguf"])
        let gguf = out.appendingPathComponent("adapter.gguf")
        // The file llama.cpp ran is byte for byte what export writes today.
        let sha = try runProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [gguf.path], environment: environment).stdout.prefix(64)
        XCTAssertEqual(String(sha), fig.adapter_gguf_sha256)

        let base = try score([]), peft = try score(["--adapter", TestPaths.fixture("export/adapter").path]),
            viaGGUF = try score(["--adapter", gguf.path])
        XCTAssertEqual(base.tokens, fig.token_ids.count - 1, "same tokens scored")
        let ours = FP32.nll(forward: FP32.defaultModelForward, logitScale: try ReferenceScale.defaultModelLogits())
        // The GGUF path (scaling folded into B, q/k permuted and back) equals the PEFT path.
        XCTAssertLessThanOrEqual(abs(viaGGUF.mean_nll - peft.mean_nll), ours, "\(viaGGUF.mean_nll) vs \(peft.mean_nll)")
        let e = abs(base.mean_nll - fig.base_nll)
        let shiftOurs = peft.mean_nll - base.mean_nll, shiftTheirs = fig.adapter_nll - fig.base_nll
        XCTAssertGreaterThan(abs(shiftTheirs), 4 * e + 2 * ours, "the adapter moves llama.cpp's NLL by more than the bound")
        XCTAssertLessThanOrEqual(abs(shiftOurs - shiftTheirs), 2 * e + 2 * ours,
                                 "ours \(shiftOurs) vs llama.cpp \(shiftTheirs) (bases differ by \(e))")

        // Greedy continuations with the adapter agree at least as far as the two bases agree.
        let baseAgree = commonPrefix(try greedy(fig.prompt, []), fig.base_greedy_text)
        let oursText = try greedy(fig.prompt, ["--adapter", gguf.path])
        XCTAssertGreaterThan(baseAgree, 0)
        XCTAssertGreaterThanOrEqual(commonPrefix(oursText, fig.adapter_greedy_text), baseAgree, "\(oursText) vs llama.cpp \(fig.adapter_greedy_text)")
    }
}

/// Models written by `lora merge` load in the peers (scripts/fixtures/llamacpp/make_merge_fixture.py,
/// Tests/Fixtures/export/merged.json): transformers on the merged HF directory and llama.cpp on the
/// merged F32 GGUF score the paragraph as `lora score --quant none --adapter` does here, within the
/// default model's fp32 bound (two summation orders of the same dense weights). So does llama.cpp on
/// the GGUF that `lora merge --format gguf` wrote from the merged HF directory (a zero adapter:
/// conversion only), which also tokenizes the paragraph as we do: its tokenizer metadata came from
/// the HF directory's tokenizer.json.
final class MergedModelPeerCLITests: LoraCLITestCase {
    struct Figures: Decodable {
        let token_ids: [Int]
        let merged_hf_transformers_nll: Double
        let merged_gguf_f32_llamacpp_nll: Double
        let merged_hf_to_gguf_llamacpp_nll: Double
        let merged_hf_to_gguf_llamacpp_token_ids: [Int]
    }
    struct Score: Decodable { let mean_nll: Double; let tokens: Int }

    func testMergedModelsScoreInTransformersAndLlamaCppAsBasePlusAdapterHere() throws {
        let fig = try JSONDecoder().decode(Figures.self, from: Data(contentsOf: TestPaths.fixture("export/merged.json")))
        let r = try runProcess(TestPaths.loraBinary, ["score", "--model", TestPaths.defaultModel.path, "--quant", "none",
                                                      "--adapter", TestPaths.fixture("export/adapter").path,
                                                      "--data", TestPaths.fixture("default-model/paragraph.jsonl").path, "--json"],
                               environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        let ours = try JSONDecoder().decode(Score.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(ours.tokens, fig.token_ids.count - 1)
        let bound = FP32.nll(forward: FP32.defaultModelForward, logitScale: try ReferenceScale.defaultModelLogits())
        XCTAssertLessThanOrEqual(abs(ours.mean_nll - fig.merged_hf_transformers_nll), bound, "transformers on the merged HF directory")
        XCTAssertLessThanOrEqual(abs(ours.mean_nll - fig.merged_gguf_f32_llamacpp_nll), bound, "llama.cpp on the merged GGUF")
        XCTAssertLessThanOrEqual(abs(ours.mean_nll - fig.merged_hf_to_gguf_llamacpp_nll), bound, "llama.cpp on the GGUF written from HF")
        let text = try String(contentsOf: TestPaths.fixture("default-model/paragraph.txt"), encoding: .utf8)
        let tokenizer = try Tokenizer(gguf: try GGUFFile(TestPaths.defaultModel).tokenizerData())
        XCTAssertEqual(fig.merged_hf_to_gguf_llamacpp_token_ids, tokenizer.encode(text, addSpecialTokens: false),
                       "llama.cpp's tokenization with the GGUF written from HF versus ours")
    }
}
