import Foundation
import TestSupport
import XCTest

/// `lora quantize`: the written bnb-4bit checkpoint reloads (under --quant auto, without re-quantizing)
/// to exactly the weights `--quant nf4` makes from the source, so NLLs are identical; `lora info` shows
/// NF4 linears.
final class InteropCLITests: TemporaryDirectoryTestCase {
    var lora: URL { TestPaths.loraBinary }

    func quantize(_ model: URL, _ name: String) throws -> URL {
        let out = dir.appendingPathComponent(name)
        let r = try runProcess(lora, ["quantize", "--model", model.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), out.standardizedFileURL.path)
        return out
    }

    func score(_ model: URL, quant: String, data: URL) throws -> (nll: Double, tokens: Int) {
        let r = try runProcess(lora, ["score", "--model", model.path, "--quant", quant, "--json", "--data", data.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        return (try XCTUnwrap(obj["mean_nll"] as? Double), try XCTUnwrap(obj["tokens"] as? Int))
    }

    /// `lora info --json` component formats by name.
    func formats(_ model: URL) throws -> [String: String] {
        let r = try runProcess(lora, ["info", "--model", model.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let comps = (obj["info"] as! [String: Any])["components"] as! [[String: Any]]
        return Dictionary(uniqueKeysWithValues: comps.map { ($0["name"] as! String, $0["format"] as! String) })
    }

    func testQuantizedTinyModelReloadsWithTheNLLOfNF4() throws {
        let src = TestPaths.fixture("models/tiny-llama-tied")
        let out = try quantize(src, "tiny")
        let data = TestPaths.fixture("models/score.jsonl")
        let direct = try score(src, quant: "nf4", data: data)
        let reloaded = try score(out, quant: "auto", data: data)
        XCTAssertEqual(reloaded.tokens, direct.tokens)
        XCTAssertEqual(reloaded.nll, direct.nll, "bit-identical weights give identical NLL")
        let f = try formats(out)
        XCTAssertEqual(f["attention"], "nf4")
        XCTAssertEqual(f["mlp"], "nf4")
        XCTAssertEqual(f["embedding"], "f32")
        // --quant none dequantizes the stored NF4: a different (fp32) computation of the same weights.
        let none = try score(out, quant: "none", data: data)
        XCTAssertEqual(none.nll, direct.nll, accuracy: FP32.nll(forward: FP32.tinyModelForward, logitScale: try ReferenceScale.tinyModelLogits()))
    }

    func testDefaultModelGGUFQuantizesToACheckpointWithTheNLLOfNF4() throws {
        let model = try TestPaths.requireDefaultModel()
        let out = try quantize(model, "smollm2")
        let data = TestPaths.fixture("default-model/paragraph.jsonl")
        let direct = try score(model, quant: "nf4", data: data)
        let reloaded = try score(out, quant: "auto", data: data)
        // Same token count: the tokenizer.json built from the GGUF metadata tokenizes alike.
        XCTAssertEqual(reloaded.tokens, direct.tokens)
        XCTAssertEqual(reloaded.nll, direct.nll, "bit-identical weights give identical NLL")
        let f = try formats(out)
        XCTAssertEqual(f["attention"], "nf4")
        XCTAssertEqual(f["mlp"], "nf4")
        let g = try runProcess(lora, ["generate", "--model", out.path, "--max-tokens", "3", "The capital of France is"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stdout.hasPrefix(" Paris"), g.stdout)
        for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
    }

    func testQuantizeRefusesAnExistingOutputDirectory() throws {
        let r = try runProcess(lora, ["quantize", "--model", TestPaths.fixture("models/tiny-llama-tied").path, "--output", dir.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("already exists"), r.stderr)
    }
}
