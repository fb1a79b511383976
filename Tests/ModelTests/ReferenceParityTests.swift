import Foundation
import Kernels
import Model
import Quantization
import TestSupport
import XCTest

/// The forward pass against HF transformers' fp32 outputs on the committed tiny models
/// (Tests/Fixtures/models, written by scripts/fixtures/make_model_fixtures.py).
final class ReferenceParityTests: XCTestCase {
    /// Ours and transformers in fp32 differ only in summation order: max |Δlogit| relative to the
    /// logits' scale (FP32.tinyModelForward).
    static let logitTolerance = FP32.tinyModelForward
    /// An NLL is logsumexp(logits) − logit: each term moves by at most the logit error, so an NLL by
    /// at most twice the logit tolerance times the logits' scale.
    static func nllTolerance(logitScale: Double) -> Double { 2 * logitTolerance * logitScale }

    struct Reference: Decodable {
        struct Greedy: Decodable { let tokens: [Int]; let top2_gaps: [Double]; let top1_logits: [Float] }
        struct Case: Decodable { let name: String; let input_ids: [Int]; let logits: [[Float]]; let greedy: Greedy }
        struct ScoreRecord: Decodable { let input_ids: [Int]; let scored_from: Int; let nll: Double; let tokens: Int }
        struct Score: Decodable { let mean_nll: Double; let tokens: Int; let records: [ScoreRecord] }
        let cases: [Case]
        let score: Score
    }

    /// The Llama fixtures of issue 2, then the families of issue 3 (Qwen2 with q/k/v biases, Mistral
    /// with a sliding window shorter than the cases, llama3 and linear RoPE scaling, and GGUF copies
    /// of the scaled-rope models, written by scripts/fixtures/make_family_fixtures.py).
    static let models = ["tiny-llama-tied", "tiny-llama-untied", "tiny-llama-bf16", "tiny-llama-f16", "tiny-llama-gguf",
                         "tiny-qwen2", "tiny-mistral", "tiny-llama3-rope", "tiny-llama-linear-rope",
                         "tiny-qwen2-gguf", "tiny-llama3-rope-gguf", "tiny-llama-linear-rope-gguf"]

    /// A "-gguf" directory holds one .gguf file; without a reference.json of its own, its expected
    /// outputs are those of the HF directory it was converted from (same fp32 weights).
    func load(_ name: String) throws -> (LlamaModel, Reference) {
        let dir = TestPaths.fixture("models/\(name)")
        var src = dir
        var refURL = dir.appendingPathComponent("reference.json")
        if name.hasSuffix("-gguf") {
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".gguf") }
            XCTAssertEqual(files.count, 1, name)
            src = dir.appendingPathComponent(files[0])
            if !FileManager.default.fileExists(atPath: refURL.path) {
                refURL = TestPaths.fixture("models/\(name.dropLast(5))/reference.json")
            }
        }
        let loaded = try ModelLoader.load(src)
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: refURL))
        return (LlamaModel(config: loaded.config, weights: loaded.weights), ref)
    }

    func testLogitsMatchTransformersWithin1e4ForEveryTinyModel() throws {
        for name in Self.models {
            let (model, ref) = try load(name)
            let V = model.config.vocabSize
            for c in ref.cases {
                let logits = try model.logits(for: c.input_ids)
                let worst = scaledMaxError(Array(logits[0..<(c.input_ids.count * V)]), c.logits.flatMap { $0 })
                XCTAssertLessThanOrEqual(worst, Self.logitTolerance, "\(name) case \(c.name): max |Δlogit| / scale \(worst)")
            }
        }
    }

    /// Decode rows with fp32 activations: ours and transformers differ only in summation order.
    func testGreedyContinuationsEqualTransformersAndCachedLogitsMatch() throws {
        try withDecodeActivations(.f32) { try checkGreedyAndCachedLogits(tolerance: Self.logitTolerance) }
    }

    /// Decode rows with int8 activations in the layers and two-digit ones for the head (`q8`, the default
    /// where the CPU has AVX2): the bound adds each quantized product's activation error to the fp32 chain
    /// (`Q8Decode.chain`, the same 16 products, of which the 2 layers' 7 linear weights take int8 inputs and
    /// the head two-digit ones). Only the "-gguf" models have Q4_1 / Q8_0 weights, the others decode in fp32
    /// either way.
    func testGreedyContinuationsAndCachedLogitsWithInt8DecodeActivations() throws {
        try withDecodeActivations(.q8) {
            try checkGreedyAndCachedLogits(tolerance: Q8Decode.chain(products: 16, int8Products: 2 * 7, twoDigitProducts: 1,
                                                                     innerDimension: 160))
        }
    }

    /// Int8 in the layers, the head on fp32 inputs (`q8-f32head`): the 14 int8 products alone.
    func testGreedyContinuationsAndCachedLogitsWithInt8DecodeActivationsAndAnFP32Head() throws {
        try withDecodeActivations(.q8F32Head) {
            try checkGreedyAndCachedLogits(tolerance: Q8Decode.chain(products: 16, int8Products: 2 * 7, innerDimension: 160))
        }
    }

    /// The same with int8 activations for the output head too (`q8-all`): one int8 product more.
    func testGreedyContinuationsAndCachedLogitsWithInt8DecodeActivationsEverywhere() throws {
        try withDecodeActivations(.q8All) {
            try checkGreedyAndCachedLogits(tolerance: Q8Decode.chain(products: 16, int8Products: 2 * 7 + 1, innerDimension: 160))
        }
    }

    /// Greedy tokens may differ from HF only where HF's top two logits are within twice the logit
    /// error (`tolerance` times the scale) of each other (each side may move by the error).
    func checkGreedyAndCachedLogits(tolerance: Double) throws {
        for name in Self.models {
            let (model, ref) = try load(name)
            for c in ref.cases {
                let scale = Double(c.logits.flatMap { $0 }.map(abs).max() ?? 1)
                var topLogits: [Float] = []
                let result = try model.generate(
                    GenerationRequest(prompt: c.input_ids, maxTokens: c.greedy.tokens.count, eosTokenIds: []),
                    decode: { _ in "" })
                for (i, (ours, theirs)) in zip(result.tokens, c.greedy.tokens).enumerated() where ours != theirs {
                    XCTAssertLessThan(c.greedy.top2_gaps[i], 2 * tolerance * scale, "\(name) \(c.name): token \(i) is \(ours), HF \(theirs)")
                    break  // after a legitimate tie the sequences diverge
                }
                // The chosen token's logit at each step, from the KV-cache path, equals HF's.
                let seq = c.input_ids + c.greedy.tokens
                let cache = KVCache(config: model.config, capacity: seq.count)
                let ws = Workspace()
                var hidden = [Float](repeating: 0, count: seq.count * model.config.hiddenSize)
                var logits = [Float](repeating: 0, count: model.config.vocabSize)
                var input = c.input_ids
                for i in 0..<c.greedy.tokens.count {
                    try hidden.withUnsafeMutableBufferPointer { h in
                        try model.forward(input, cache: cache, adapters: .none, workspace: ws, hidden: h.baseAddress!)
                        logits.withUnsafeMutableBufferPointer {
                            model.logits(hidden: h.baseAddress! + (input.count - 1) * model.config.hiddenSize, tokens: 1, into: $0.baseAddress!)
                        }
                    }
                    topLogits.append(logits[c.greedy.tokens[i]])
                    input = [c.greedy.tokens[i]]
                }
                for (a, b) in zip(topLogits, c.greedy.top1_logits) {
                    XCTAssertEqual(Double(a), Double(b), accuracy: tolerance * scale, "\(name) \(c.name): cached decoding logit")
                }
            }
        }
    }

    func testRecordNLLsMatchTransformers() throws {
        for name in Self.models {
            let (model, ref) = try load(name)
            var sum = 0.0, count = 0, worstScale = 0.0
            for r in ref.score.records {
                let rec = TokenizedRecord(tokens: r.input_ids, scored: r.input_ids.indices.map { $0 >= r.scored_from && $0 > 0 })
                let nll = try model.negativeLogLikelihood(rec)
                let scale = Double(try model.logits(for: r.input_ids).map(abs).max() ?? 1)
                worstScale = max(worstScale, scale)
                XCTAssertEqual(nll.count, r.tokens)
                XCTAssertEqual(nll.mean, r.nll, accuracy: Self.nllTolerance(logitScale: scale), "\(name)")
                sum += nll.sum; count += nll.count
            }
            XCTAssertEqual(count, ref.score.tokens)
            XCTAssertEqual(sum / Double(count), ref.score.mean_nll, accuracy: Self.nllTolerance(logitScale: worstScale))
        }
    }
}
