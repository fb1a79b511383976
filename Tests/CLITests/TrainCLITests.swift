import Foundation
import TestSupport
import XCTest

/// `lora train` as a user runs it.
final class TrainCLITests: XCTestCase {
    var lora: URL { TestPaths.loraBinary }
    var dir: URL!
    override func setUp() { dir = FileManager.default.temporaryDirectory.appendingPathComponent("train-cli-\(UUID().uuidString)") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    var model: String { TestPaths.fixture("models/tiny-llama-tied").path }
    var data: String { TestPaths.fixture("peft/train.jsonl").path }

    func args(_ out: URL, steps: Int = 400) -> [String] {
        ["train", "--model", model, "--quant", "none", "--data", data, "--output", out.path, "--rank", "4", "--alpha", "8",
         "--max-steps", "\(steps)", "--batch-size", "2", "--grad-accum", "2", "--dropout", "0.1", "--lr", "1e-3",
         "--seed", "5", "--threads", "1", "--json"]
    }

    func lines(_ s: String) -> [[String: Any]] {
        s.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func testJSONOutputHasSettingsStepsAndASummaryAndTheAdapterLoads() throws {
        let out = dir.appendingPathComponent("a")
        let r = try runProcess(lora, args(out, steps: 3) + ["--eval-data", data, "--eval-every", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let objs = lines(r.stdout)
        XCTAssertNotNil(objs.first?["settings"])
        let steps = objs.filter { $0["grad_norm"] != nil }
        XCTAssertEqual(steps.map { $0["step"] as! Int }, [1, 2, 3])
        for s in steps { for k in ["loss", "lr", "tokens_per_s"] { XCTAssertNotNil(s[k], k) } }
        XCTAssertEqual(objs.filter { $0["eval_loss"] != nil && $0["done"] == nil }.map { $0["step"] as? Int }, [2, 3])
        let done = try XCTUnwrap(objs.last)
        XCTAssertEqual(done["done"] as? Bool, true)
        XCTAssertNotNil(done["train_loss"]); XCTAssertNotNil(done["eval_loss"]); XCTAssertNotNil(done["peak_rss_bytes"])
        let g = try runProcess(lora, ["score", "--model", model, "--quant", "none", "--adapter", out.path, "--data", data, "--json"])
        XCTAssertEqual(g.status, 0, g.stderr)
    }

    func testBadFlagsAndBadDataAreRefusedBeforeTraining() throws {
        let out = dir.appendingPathComponent("b")
        let bad = dir.appendingPathComponent("bad.jsonl")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "{\"text\": \"fine\"}\n{\"prompt\": \"no completion\"}\n".write(to: bad, atomically: true, encoding: .utf8)
        let r1 = try runProcess(lora, ["train", "--model", model, "--data", bad.path, "--output", out.path])
        XCTAssertNotEqual(r1.status, 0)
        XCTAssertTrue(r1.stderr.contains("bad.jsonl:2"), r1.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing is written for bad data")
        let r2 = try runProcess(lora, ["train", "--model", model, "--data", data, "--output", out.path, "--targets", "q_proj,lm_head"])
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.stderr.contains("lm_head"), r2.stderr)
        let r3 = try runProcess(lora, ["train", "--model", model, "--data", data, "--output", out.path, "--epochs", "2", "--max-steps", "3"])
        XCTAssertNotEqual(r3.status, 0)
    }

    /// SIGINT mid-run saves a checkpoint and exits; --resume ends at the uninterrupted run's adapter.
    func testSIGINTCheckpointsAndResumeReachesTheUninterruptedAdapter() throws {
        let steps = 300
        let whole = dir.appendingPathComponent("whole"), cut = dir.appendingPathComponent("cut")
        let w = try runProcess(lora, args(whole, steps: steps))
        XCTAssertEqual(w.status, 0, w.stderr)

        let p = Process()
        p.executableURL = lora
        p.arguments = args(cut, steps: steps)
        let pipe = Pipe(), err = Pipe()
        p.standardOutput = pipe
        p.standardError = err
        try p.run()
        var buffer = ""
        var signalled = false
        while true {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer += String(decoding: chunk, as: UTF8.self)
            if !signalled, buffer.contains("\"step\":20,") { kill(p.processIdentifier, SIGINT); signalled = true }
        }
        p.waitUntilExit()
        XCTAssertTrue(signalled, "the run ended before step 20")
        XCTAssertEqual(p.terminationStatus, 130, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        let ckpts = try FileManager.default.contentsOfDirectory(atPath: cut.path).filter { $0.hasPrefix("checkpoint-") }
        XCTAssertEqual(ckpts.count, 1, "\(ckpts)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cut.appendingPathComponent("adapter_model.safetensors").path))

        let r = try runProcess(lora, args(cut, steps: steps) + ["--resume"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let a = try Data(contentsOf: whole.appendingPathComponent("adapter_model.safetensors"))
        let b = try Data(contentsOf: cut.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(a.count, b.count)
        // Same flags, same data, same thread count: the resumed adapter equals the uninterrupted one.
        let fa = a.suffix(from: a.count - 4 * 4000).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let fb = b.suffix(from: b.count - 4 * 4000).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(fa, fb, "exact: the resumed run repeats the same arithmetic on the same shapes")
        XCTAssertEqual(lines(r.stdout).last?["steps"] as? Int, steps)
    }
}

extension TrainCLITests {
    func testKeepBestKeepsTheAdapterWithTheLowestEvalLossAndCheckpointsAreRotated() throws {
        let out = dir.appendingPathComponent("best")
        let r = try runProcess(lora, args(out, steps: 6) + ["--eval-data", data, "--eval-every", "1", "--keep-best",
                                                           "--checkpoint-every", "1", "--keep-checkpoints", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let evals = lines(r.stdout).filter { $0["eval_loss"] != nil && $0["done"] == nil }.map { $0["eval_loss"] as! Double }
        XCTAssertEqual(evals.count, 6)
        let best = out.appendingPathComponent("best")
        XCTAssertTrue(FileManager.default.fileExists(atPath: best.appendingPathComponent("adapter_model.safetensors").path))
        // The kept adapter scores the eval data at the best eval loss seen.
        let s = try runProcess(lora, ["score", "--model", model, "--quant", "none", "--adapter", best.path, "--data", data, "--json"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let nll = (try JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as! [String: Any])["mean_nll"] as! Double
        // Training's evaluation and `lora score` are different forwards of the same model (summation order).
        XCTAssertEqual(nll, evals.min()!, accuracy: FP32.nll(forward: FP32.tinyModelForward, logitScale: try ReferenceScale.tinyModelLogits()))
        let ckpts = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix("checkpoint-") }.sorted()
        XCTAssertEqual(ckpts, ["checkpoint-4", "checkpoint-5"])
    }
}
