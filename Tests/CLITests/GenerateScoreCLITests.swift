import Foundation
import TestSupport
import XCTest

/// `lora generate` and `lora score` run as a user runs them (the release binary).
final class GenerateScoreCLITests: XCTestCase {
    var lora: URL { TestPaths.loraBinary }

    func testGenerateOnTheDefaultModelContinuesFranceWithParis() throws {
        let model = try TestPaths.requireDefaultModel()
        let r = try runProcess(lora, ["generate", "--model", model.path, "--quant", "none", "--max-tokens", "6", "The capital of France is"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix(" Paris"), "got \(r.stdout)")
        let j = try runProcess(lora, ["generate", "--model", model.path, "--max-tokens", "4", "--json", "The capital of France is"])
        XCTAssertEqual(j.status, 0, j.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["tokens"] as? [Int], [7042, 30, 198, 198])
        XCTAssertEqual(obj["text"] as? String, " Paris.\n\n")
        XCTAssertEqual(obj["finish_reason"] as? String, "length")
    }

    func testGenerateStopsAtAStopString() throws {
        let model = try TestPaths.requireDefaultModel()
        let r = try runProcess(lora, ["generate", "--model", model.path, "--max-tokens", "16", "--stop", "\n", "--json", "The capital of France is"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["text"] as? String, " Paris.")
        XCTAssertEqual(obj["finish_reason"] as? String, "stop")
    }

    func testSamplingWithASeedIsReproducible() throws {
        let model = try TestPaths.requireDefaultModel()
        let args = ["generate", "--model", model.path, "--max-tokens", "12", "--temperature", "0.9", "--top-p", "0.95",
                    "--top-k", "50", "--seed", "7", "--json", "Once upon a time"]
        let a = try runProcess(lora, args), b = try runProcess(lora, args)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.stdout, b.stdout)
    }

    /// `--speculate K` prints the tokens plain decoding prints (and says how many drafts stood);
    /// out-of-range values are refused naming the flag and the value.
    func testSpeculationPrintsThePlainTokensAndRefusesBadValues() throws {
        let model = try TestPaths.requireDefaultModel()
        let prompt = "Repeat exactly: the blue lamp ships to Oslo on Friday.\nRepeat: the blue lamp"
        let base = ["generate", "--model", model.path, "--max-tokens", "12", "--json", prompt]
        let plain = try runProcess(lora, base)
        let spec = try runProcess(lora, base + ["--speculate", "4", "--lookup-ngram", "2"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertEqual(spec.status, 0, spec.stderr)
        let p = try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as! [String: Any]
        let s = try JSONSerialization.jsonObject(with: Data(spec.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(s["tokens"] as? [Int], p["tokens"] as? [Int])
        XCTAssertEqual(s["text"] as? String, p["text"] as? String)
        XCTAssertNil(p["speculation"], "plain output has no speculation figures")
        let figures = try XCTUnwrap(s["speculation"] as? [String: Int])
        XCTAssertGreaterThan(figures["drafted"] ?? 0, 0)
        XCTAssertGreaterThan(figures["accepted"] ?? 0, 0, "the prompt's copy was never drafted: \(spec.stdout)")
        for (flag, value, range) in [("--speculate", "17", "0...16"), ("--speculate", "-1", "0...16"), ("--lookup-ngram", "0", "1...16"),
                                     ("--lookup-min-ngram", "4", "1...3")] {
            let r = try runProcess(lora, ["generate", "--model", model.path, "--speculate", "2", "\(flag)=\(value)", "hi"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(flag) && r.stderr.contains(range) && r.stderr.contains(value), r.stderr)
        }
    }

    /// The tiny model's score.jsonl through the tokenizer and the CLI equals transformers' NLLs.
    func testScoreJSONMatchesTransformersOnTheTinyModel() throws {
        struct Ref: Decodable {
            struct Score: Decodable { let mean_nll: Double; let tokens: Int; let records: [Rec] }
            struct Rec: Decodable { let nll: Double; let tokens: Int }
            let score: Score
        }
        let dir = TestPaths.fixture("models/tiny-llama-tied")
        let ref = try JSONDecoder().decode(Ref.self, from: Data(contentsOf: dir.appendingPathComponent("reference.json")))
        let r = try runProcess(lora, ["score", "--model", dir.path, "--quant", "none", "--data",
                                      TestPaths.fixture("models/score.jsonl").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let tolerance = FP32.nll(forward: FP32.tinyModelForward, logitScale: try ReferenceScale.tinyModelLogits())
        XCTAssertEqual(obj["mean_nll"] as! Double, ref.score.mean_nll, accuracy: tolerance)
        XCTAssertEqual(obj["tokens"] as? Int, ref.score.tokens)
        let recs = obj["records"] as! [[String: Any]]
        XCTAssertEqual(recs.count, ref.score.records.count)
        for (a, b) in zip(recs, ref.score.records) {
            XCTAssertEqual(a["nll"] as! Double, b.nll, accuracy: tolerance)
            XCTAssertEqual(a["tokens"] as? Int, b.tokens)
        }
    }

    func testScoreOfTheDefaultModelParagraphMatchesTransformers() throws {
        struct Ref: Decodable { struct P: Decodable { let nll: Double; let tokens: Int }; let paragraph: P }
        let model = try TestPaths.requireDefaultModel()
        let ref = try JSONDecoder().decode(Ref.self, from: Data(contentsOf: TestPaths.fixture("default-model/reference.json")))
        let r = try runProcess(lora, ["score", "--model", model.path, "--data", TestPaths.fixture("default-model/paragraph.jsonl").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let tolerance = FP32.nll(forward: FP32.defaultModelForward, logitScale: try ReferenceScale.defaultModelLogits())
        XCTAssertEqual(obj["mean_nll"] as! Double, ref.paragraph.nll, accuracy: tolerance)
        XCTAssertEqual(obj["tokens"] as? Int, ref.paragraph.tokens)
    }

    func testScoreRefusesBadLinesNamingFileAndLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = TestPaths.fixture("models/tiny-llama-tied").path
        let cases: [(String, String)] = [
            ("{\"text\": \"ok\"}\n[1, 2]\n", ":2: expected a JSON object"),
            ("{\"text\": \"ok\"}\n{\"text\": \"fine\"}\n{not json\n", ":3: not valid JSON"),
            ("{\"prompt\": \"p\"}\n", ":1: missing field 'completion'"),
            ("{\"text\": 5}\n", ":1: field 'text' must be a string"),
        ]
        for (content, expected) in cases {
            let f = dir.appendingPathComponent("bad.jsonl")
            try content.write(to: f, atomically: true, encoding: .utf8)
            let r = try runProcess(lora, ["score", "--model", model, "--data", f.path])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(f.path + expected), "stderr: \(r.stderr)")
        }
    }

    func testLoadingATruncatedModelFileFailsWithTheFileName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf")
        let data = try Data(contentsOf: src)
        let cut = dir.appendingPathComponent("cut.gguf")
        try data.prefix(data.count / 2).write(to: cut)
        let r = try runProcess(lora, ["generate", "--model", cut.path, "hello"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(cut.path), r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
    }
}

extension GenerateScoreCLITests {
    /// `--model` takes a URL: the model is fetched into the cache ($LORA_HOME) and loaded from there.
    func testModelGivenAsAURLIsFetchedIntoTheCacheAndRuns() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("lora-home-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        var env = ProcessInfo.processInfo.environment
        env["LORA_HOME"] = home.path
        let src = TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf")
        let local = try runProcess(lora, ["generate", "--model", src.path, "--max-tokens", "5", "--json", "hello"], environment: env)
        let remote = try runProcess(lora, ["generate", "--model", src.absoluteString, "--max-tokens", "5", "--json", "hello"], environment: env)
        XCTAssertEqual(remote.status, 0, remote.stderr)
        XCTAssertEqual(remote.stdout, local.stdout)
        let blobs = try FileManager.default.contentsOfDirectory(atPath: home.appendingPathComponent("blobs/sha256").path)
        XCTAssertEqual(blobs.count, 1)
    }
}
