import Foundation
import Model
import TestSupport
import Training
import XCTest

/// The training forward of every family fixture (Qwen2 biases, Mistral's window, scaled RoPE)
/// computes the same loss as the inference forward that is checked against transformers.
final class FamilyTrainingTests: XCTestCase {
    static let families = ["tiny-qwen2", "tiny-mistral", "tiny-llama3-rope", "tiny-llama-linear-rope", "tiny-llama3-rope-gguf", "tiny-qwen2-gguf"]
    /// The training and inference forwards are different code (and padding/packing different shapes) over
    /// the same fp32 arithmetic: at most 16 dependent products (q/k/v, scores, attention, o, gate/up, down
    /// per layer, 2 layers, the head, LoRA's A and B) over at most 64 terms (width 32, FFN 64), relative.
    static let tolerance = FP32.chain(products: 16, innerDimension: 64)

    struct Reference: Decodable {
        struct Record: Decodable { let input_ids: [Int]; let scored_from: Int }
        struct Score: Decodable { let records: [Record] }
        let score: Score
    }

    func records() throws -> [TokenizedRecord] {
        let url = TestPaths.fixture("models/tiny-qwen2/reference.json")
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        return ref.score.records.map { r in
            TokenizedRecord(tokens: r.input_ids, scored: r.input_ids.indices.map { $0 >= r.scored_from && $0 > 0 })
        }
    }

    func model(_ name: String) throws -> LlamaModel {
        var url = TestPaths.fixture("models/\(name)")
        if name.hasSuffix("-gguf") { url.appendPathComponent("\(name.dropLast(5)).gguf") }
        let loaded = try ModelLoader.load(url)
        return LlamaModel(config: loaded.config, weights: loaded.weights)
    }

    func testGradientCheckpointingGivesTheSameGradientsWithBiasesAndTheWindow() throws {
        let recs = try records()
        for name in ["tiny-qwen2", "tiny-mistral", "tiny-llama3-rope"] {
            let model = try model(name)
            let adapter = LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, dropout: 0), base: model.config)
            adapter.initialize(seed: 9)
            for p in adapter.pairs { for i in 0..<p.bCount { adapter.parameters[p.bOffset + i] = 0.01 * Float(i % 7) - 0.03 } }
            let batch = MicroBatch.packed([Array(recs.prefix(3)), Array(recs.suffix(2))],
                                          length: recs.prefix(3).map(\.tokens.count).reduce(0, +))
            let plain = TrainingEngine(model: model, adapter: adapter)
            let ckpt = TrainingEngine(model: model, adapter: adapter, gradientCheckpointing: true)
            let a = try plain.accumulate(batch, lossScale: 0.1, dropoutSeed: 0)
            let b = try ckpt.accumulate(batch, lossScale: 0.1, dropoutSeed: 0)
            XCTAssertEqual(a.sum, b.sum, name)
            XCTAssertTrue(plain.gradients.contains { $0 != 0 }, name)
            XCTAssertEqual(plain.gradients, ckpt.gradients, name)
        }
    }

    func testNF4LoadingKeepsQwen2BiasesInFloat32() throws {
        let url = TestPaths.fixture("models/tiny-qwen2")
        let nf4 = try ModelLoader.load(url, quantization: .nf4), dense = try ModelLoader.load(url)
        for (a, b) in zip(nf4.weights.layers, dense.weights.layers) {
            XCTAssertNotNil(a.qBias)
            XCTAssertEqual(a.qBias, b.qBias)
            XCTAssertEqual(a.kBias, b.kBias)
            XCTAssertEqual(a.vBias, b.vBias)
        }
    }

    func testTrainingLossEqualsInferenceNLLForEveryFamilyWithAnAdapter() throws {
        let recs = try records()
        for name in Self.families {
            let model = try model(name)
            let adapter = LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, dropout: 0), base: model.config)
            adapter.initialize(seed: 7)
            for p in adapter.pairs { for i in 0..<p.bCount { adapter.parameters[p.bOffset + i] = 0.02 * Float(i % 5) - 0.04 } }
            let engine = TrainingEngine(model: model, adapter: adapter)
            var total = 0.0
            for rec in recs {
                let train = try engine.evaluate(MicroBatch.padded([rec]))
                let infer = try model.negativeLogLikelihood(rec, adapters: AdapterSet([adapter]))
                XCTAssertEqual(train.scored, infer.count, name)
                XCTAssertEqual(train.sum, infer.sum, accuracy: Self.tolerance * abs(infer.sum), name)
                total += infer.sum
            }
            // All records padded into one batch, and packed into one row: positions restart per
            // record and the window (Mistral) counts within the record.
            let padded = try engine.evaluate(MicroBatch.padded(recs))
            XCTAssertEqual(padded.sum, total, accuracy: Self.tolerance * total, "\(name) padded")
            let length = recs.map(\.tokens.count).reduce(0, +)
            let packed = try engine.evaluate(MicroBatch.packed([recs], length: length))
            XCTAssertEqual(packed.sum, total, accuracy: Self.tolerance * total, "\(name) packed")
        }
    }
}
