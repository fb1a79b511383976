import Foundation
import TestSupport
import XCTest

/// `lora bench` (issue 15) on a tiny random model: the correctness twin of the speed figures. It checks
/// what the JSON says (kind, shape, one figure per kind with its repetitions, the median of them, the
/// bound's work per token derived from the model's shapes), never how fast anything ran.
final class BenchCLITests: XCTestCase {
    var lora: URL { TestPaths.loraBinary }
    var model: URL { TestPaths.fixture("models/tiny-llama-tied") }

    func bench(_ args: [String]) throws -> [String: Any] {
        let r = try runProcess(lora, ["bench"] + args + ["--model", model.path, "--quant", "none", "--threads", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    /// The tiny model's dimensions, from its config.json.
    func dims() throws -> (linear: Double, head: Double, d: Int, f: Int, v: Int) {
        let c = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("config.json"))) as? [String: Any])
        let d = c["hidden_size"] as! Int, f = c["intermediate_size"] as! Int, e = c["head_dim"] as! Int
        let h = c["num_attention_heads"] as! Int, hk = c["num_key_value_heads"] as! Int
        let perLayer = d * h * e + 2 * d * hk * e + h * e * d + 3 * d * f
        let v = c["vocab_size"] as! Int
        return (Double(perLayer * (c["num_hidden_layers"] as! Int)), Double(v * d), d, f, v)
    }

    /// One figure per kind, `repetitions` positive finite samples, the median their middle one.
    func checkFigure(_ out: [String: Any], kind: String, name: String, unit: String, reps: Int) throws -> [String: Any] {
        XCTAssertEqual(out["kind"] as? String, kind)
        XCTAssertEqual(out["quant"] as? String, "none")
        XCTAssertEqual(out["threads"] as? Int, 2)
        XCTAssertGreaterThan(out["peak_rss_bytes"] as? Int ?? 0, 0)
        let figures = try XCTUnwrap(out["figures"] as? [[String: Any]])
        XCTAssertEqual(figures.count, 1)
        let f = figures[0]
        XCTAssertEqual(f["name"] as? String, name)
        XCTAssertEqual(f["unit"] as? String, unit)
        let samples = try XCTUnwrap(f["samples"] as? [Double])
        XCTAssertEqual(samples.count, reps)
        for s in samples { XCTAssertTrue(s.isFinite && s > 0, "\(samples)") }
        XCTAssertEqual(f["median"] as? Double, samples.sorted()[reps / 2])
        return f
    }

    func testTrainPrefillAndDecodeReportTheirFiguresShapesAndBounds() throws {
        let m = try dims()
        let train = try bench(["train", "--batch-size", "2", "--seq-len", "16", "--rank", "4", "--repetitions", "3", "--warmups", "1"])
        let shape = try XCTUnwrap(train["shape"] as? [String: Any])
        XCTAssertEqual(shape["batch"] as? Int, 2); XCTAssertEqual(shape["sequenceLength"] as? Int, 16); XCTAssertEqual(shape["rank"] as? Int, 4)
        let tf = try checkFigure(train, kind: "train", name: "train_tokens_per_s", unit: "tokens/s", reps: 3)
        // Forward and input-gradient backward through every frozen product, the LM head included.
        XCTAssertEqual(tf["boundFlopsPerToken"] as? Double, 4 * (m.linear + m.head))

        let prefill = try bench(["prefill", "--prompt-tokens", "40", "--prefill-chunk", "16", "--repetitions", "3", "--warmups", "0"])
        XCTAssertEqual((prefill["shape"] as? [String: Any])?["promptTokens"] as? Int, 40)
        XCTAssertEqual((prefill["shape"] as? [String: Any])?["prefillChunk"] as? Int, 16)
        let pf = try checkFigure(prefill, kind: "prefill", name: "prefill_tokens_per_s", unit: "tokens/s", reps: 3)
        XCTAssertEqual(pf["boundFlopsPerToken"] as? Double, 2 * m.linear)

        let decode = try bench(["decode", "--new-tokens", "5", "--repetitions", "1", "--warmups", "0"])
        let df = try checkFigure(decode, kind: "decode", name: "decode_tokens_per_s", unit: "tokens/s", reps: 1)
        // --quant none: every weight fp32, the tied head a dense copy of the embedding.
        XCTAssertEqual(df["boundBytesPerToken"] as? Double, 4 * (m.linear + m.head))
    }

    /// `decode --rows N`: N sequences decoded together (a serving step), with adapters: tokens/s over all
    /// rows and milliseconds per step, one per repetition; each repetition's two figures describe the
    /// same steps (tokens/s x ms per step = N rows x 1000).
    func testDecodeRowsReportsTokensAndStepTimeForAServingStep() throws {
        let m = try dims()
        let out = try bench(["decode", "--rows", "3", "--adapter-rank", "2", "--adapters", "2", "--adapter-targets", "q_proj,v_proj",
                             "--new-tokens", "4", "--repetitions", "3", "--warmups", "1"])
        XCTAssertEqual(out["kind"] as? String, "decode")
        let figures = try XCTUnwrap(out["figures"] as? [[String: Any]])
        XCTAssertEqual(figures.map { $0["name"] as? String }, ["decode_rows_tokens_per_s", "decode_rows_step_ms"])
        let tokens = try XCTUnwrap(figures[0]["samples"] as? [Double]), ms = try XCTUnwrap(figures[1]["samples"] as? [Double])
        XCTAssertEqual(tokens.count, 3); XCTAssertEqual(ms.count, 3)
        for (t, s) in zip(tokens, ms) {
            XCTAssertTrue(t.isFinite && t > 0 && s.isFinite && s > 0, "\(tokens) \(ms)")
            // Both from one repetition's seconds: exact but for a few fp64 roundings.
            XCTAssertEqual(t * s / 1000, 3, accuracy: 3 * 8 * 0x1p-52)
        }
        XCTAssertEqual(figures[0]["median"] as? Double, tokens.sorted()[1])
        XCTAssertEqual(figures[1]["median"] as? Double, ms.sorted()[1])
        // The frozen weights are read once a step for all rows.
        XCTAssertEqual(figures[0]["boundBytesPerToken"] as? Double, 4 * (m.linear + m.head) / 3)
    }

    func testGEMVAndBoundsReportEveryFigure() throws {
        let m = try dims()
        let gemv = try bench(["gemv", "--repetitions", "1", "--warmups", "0"])
        let names = try XCTUnwrap(gemv["figures"] as? [[String: Any]]).map { $0["name"] as? String }
        XCTAssertEqual(names, ["gemv_q_proj_\(m.d)x\(m.d)_us", "gemv_gate_proj_\(m.f)x\(m.d)_us",
                               "gemv_down_proj_\(m.d)x\(m.f)_us", "gemv_lm_head_\(m.v)x\(m.d)_us"])
        let bounds = try bench(["bounds", "--repetitions", "1", "--warmups", "0"])
        let bf = try XCTUnwrap(bounds["figures"] as? [[String: Any]])
        XCTAssertEqual(bf.map { $0["name"] as? String }, ["sgemm_gflops", "memory_read_gb_per_s"])
        for f in bf { XCTAssertGreaterThan(f["median"] as? Double ?? 0, 0) }
    }

    func testBadFlagsAreRefusedNamingTheFlag() throws {
        for (args, flag) in [(["decode", "--repetitions", "0"], "--repetitions"), (["train", "--seq-len", "0"], "--seq-len"),
                             (["prefill", "--prompt-tokens", "1000"], "--prompt-tokens"), (["decode", "--rows", "0"], "--rows"),
                             (["decode", "--adapter-rank", "4"], "--adapter-rank"), (["train", "--rows", "2"], "--rows"),
                             (["prefill", "--prefill-chunk", "0"], "--prefill-chunk"),
                             (["decode", "--rows", "2", "--adapter-targets", "q_proj,lm_head"], "lm_head")] {
            let r = try runProcess(lora, ["bench"] + args + ["--model", model.path])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(flag), r.stderr)
        }
        let r = try runProcess(lora, ["bench", "speed", "--model", model.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("speed"), r.stderr)
    }
}
