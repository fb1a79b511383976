import Foundation
import Model
import TestSupport
import XCTest

/// `lora merge`: the merged model scores what the base + adapter scores (an HF source to an HF
/// directory or a GGUF file, a GGUF source to a GGUF file), the output appears whole or not at all.
final class MergeCLITests: LoraCLITestCase {
    struct Score: Decodable { let mean_nll: Double; let records: [Record]; struct Record: Decodable { let nll: Double } }

    func score(_ model: URL, adapter: URL? = nil) throws -> Score {
        var args = ["score", "--model", model.path, "--quant", "none", "--data", TestPaths.fixture("models/score.jsonl").path, "--json"]
        if let adapter { args += ["--adapter", adapter.path] }
        let r = try runProcess(TestPaths.loraBinary, args, environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode(Score.self, from: Data(r.stdout.utf8))
    }

    func merge(_ args: [String]) throws -> ProcessResult {
        try runProcess(TestPaths.loraBinary, ["merge"] + args, environment: environment)
    }

    /// W + s·B·A in one product versus W·x + s·B·(A·x): two fp32 orders of the tiny model's chain
    /// (plus the merge's own rounding of W + s·B·A, one more product over R terms); the NLL bound is
    /// FP32.nll over the logits' scale (transformers' reference), as every other tiny-model NLL test.
    func testMergedModelsScoreWhatBasePlusAdapterScores() throws {
        let adapter = TestPaths.fixture("peft/final-adapter")
        let tolerance = FP32.nll(forward: FP32.tinyModelForward + FP32.gamma(64), logitScale: try ReferenceScale.tinyModelLogits())
        for (src, format, name) in [(TestPaths.fixture("models/tiny-llama-tied"), "hf", "merged-hf"),
                                    (TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf"), "gguf", "merged.gguf"),
                                    (TestPaths.fixture("models/tiny-llama-tied"), "gguf", "merged-from-hf.gguf")] {
            let out = scratch.appendingPathComponent(name)
            let r = try merge(["--model", src.path, "--adapter", adapter.path, "--output", out.path, "--format", format])
            XCTAssertEqual(r.status, 0, r.stderr)
            let expected = try score(src, adapter: adapter), merged = try score(out), base = try score(src)
            XCTAssertEqual(merged.records.count, expected.records.count)
            for (m, e) in zip(merged.records, expected.records) {
                XCTAssertLessThanOrEqual(abs(m.nll - e.nll), tolerance, "\(format): \(m.nll) vs \(e.nll)")
            }
            // The adapter changes the NLL by far more than the tolerance: the merge really happened.
            XCTAssertGreaterThan(abs(base.mean_nll - expected.mean_nll), 10 * tolerance, format)
            if format == "hf" {
                for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"] {
                    XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
                }
            }
            // An existing output is refused and left as it was.
            let again = try merge(["--model", src.path, "--adapter", adapter.path, "--output", out.path, "--format", format])
            XCTAssertNotEqual(again.status, 0)
            XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
        }
    }

    func testF16GGUFAndBadRequestsAreRefusedCleanly() throws {
        let adapter = TestPaths.fixture("peft/final-adapter")
        let out = scratch.appendingPathComponent("m16.gguf")
        let r = try merge(["--model", TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf").path, "--adapter", adapter.path,
                           "--output", out.path, "--format", "gguf", "--dtype", "f16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let f = try GGUFFile(out)
        XCTAssertEqual(f.tensor(named: "blk.0.attn_q.weight")?.type, .f16)
        XCTAssertEqual(f.tensor(named: "blk.0.attn_norm.weight")?.type, .f32)
        XCTAssertEqual(f.metadata["general.file_type"], .uint32(1))
        // An HF source whose tokenizer GGUF metadata cannot describe (an added token with lstrip):
        // refused naming the field and the way out; nothing is written.
        let source = scratch.appendingPathComponent("lstrip-model")
        try FileManager.default.copyItem(at: TestPaths.fixture("models/tiny-llama-tied"), to: source)
        let tokenizerFile = source.appendingPathComponent("tokenizer.json")
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: tokenizerFile)) as! [String: Any]
        var added = root["added_tokens"] as! [[String: Any]]
        added[0]["lstrip"] = true
        root["added_tokens"] = added
        try JSONSerialization.data(withJSONObject: root).write(to: tokenizerFile)
        let bad = scratch.appendingPathComponent("bad.gguf")
        let hf = try merge(["--model", source.path, "--adapter", adapter.path, "--output", bad.path, "--format", "gguf"])
        XCTAssertNotEqual(hf.status, 0)
        XCTAssertTrue(hf.stderr.contains("lstrip") && hf.stderr.contains("--format hf"), hf.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bad.path))
        let dtype = try merge(["--model", "x", "--adapter", "y", "--output", "z", "--dtype", "f8"])
        XCTAssertNotEqual(dtype.status, 0)
        XCTAssertTrue(dtype.stderr.contains("--dtype f8"), dtype.stderr)
    }
}
