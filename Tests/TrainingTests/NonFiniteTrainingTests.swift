import Foundation
import Model
import Training
import XCTest

/// A NaN in the base model's weights, or settings that blow up, stop training with an error naming
/// the step, before the optimizer writes a non-finite value into the adapter.
final class NonFiniteTrainingTests: XCTestCase {
    private func records() -> [TokenizedRecord] {
        (0..<6).map { i in
            let toks = (0..<5).map { (3 + 5 * $0 + 7 * i) % 29 }
            return TokenizedRecord(tokens: toks, scored: toks.indices.map { $0 > 0 })
        }
    }

    private func settings() -> TrainingSettings {
        var s = TrainingSettings()
        s.lora = LoRAConfig(rank: 2, alpha: 4, dropout: 0)
        s.batchSize = 2
        s.gradientAccumulation = 2
        s.maxSteps = 3
        return s
    }

    func testNaNBaseWeightStopsAtTheFirstMicroBatchNamingTheStepAndLeavesTheAdapterFinite() throws {
        let clean = GradientTests.tinyModel(seed: 5)
        var weights = clean.weights
        weights.layers[1].mlpNorm[3] = .nan
        let model = LlamaModel(config: clean.config, weights: weights)
        let adapter = LoRAAdapter(config: settings().lora, base: model.config)
        adapter.initialize(seed: 1)
        let trainer = try Trainer(model: model, adapter: adapter, settings: settings(), train: records())
        var steps = 0
        XCTAssertThrowsError(try trainer.run(onEvent: { if case .step = $0 { steps += 1 } })) { error in
            guard case let TrainingError.nonFinite(step, micro, quantity, value) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(step, 1)
            XCTAssertEqual(micro, 1)
            XCTAssertEqual(quantity, "loss")
            XCTAssertTrue(value.isNaN)
            XCTAssertTrue("\(error)".contains("step 1, micro-batch 1"), "\(error)")
        }
        XCTAssertEqual(steps, 0)
        XCTAssertTrue(trainer.engine.adapter.parameters.allSatisfy(\.isFinite))
    }

    func testAnInfiniteLearningRateIsRefusedAndAHugeOneStopsAtTheStepItBreaks() throws {
        var s = settings()
        s.learningRate = .infinity
        let model = GradientTests.tinyModel(seed: 5)
        XCTAssertThrowsError(try s.validate(for: model.config)) { XCTAssertTrue("\($0)".contains("'lr'"), "\($0)") }
        s.learningRate = 3e38
        s.maxGradNorm = nil
        let adapter = LoRAAdapter(config: s.lora, base: model.config)
        adapter.initialize(seed: 1)
        let trainer = try Trainer(model: model, adapter: adapter, settings: s, train: records())
        XCTAssertThrowsError(try trainer.run()) { error in
            guard case let TrainingError.nonFinite(step, _, _, _) = error else { return XCTFail("got \(error)") }
            XCTAssertGreaterThan(step, 1, "step 1 runs on the finite initial adapter")
        }
    }

    /// A NaN in one token's embedding row (untied head): only the step whose batch holds that token is bad.
    private func poisonedTrainer(maxBadSteps: Int?) throws -> Trainer {
        let clean = GradientTests.tinyModel(seed: 5, tied: false)
        var weights = clean.weights
        let D = clean.config.hiddenSize, poisoned = 26
        for j in 0..<D { weights.embedding[poisoned * D + j] = .nan }
        let model = LlamaModel(config: clean.config, weights: weights)
        var s = settings()
        s.gradientAccumulation = 1
        s.maxSteps = 3
        s.shuffle = false
        s.maxBadSteps = maxBadSteps
        var recs = records()
        // Records 2 and 3 make step 2's batch; record 3 holds the poisoned token.
        recs[3] = TokenizedRecord(tokens: [4, poisoned, 9, 12], scored: [false, true, true, true])
        let adapter = LoRAAdapter(config: s.lora, base: model.config)
        adapter.initialize(seed: 1)
        return try Trainer(model: model, adapter: adapter, settings: s, train: recs)
    }

    func testWithoutMaxBadStepsTheFirstBadStepStopsTrainingNamingItAndTheFlag() throws {
        let trainer = try poisonedTrainer(maxBadSteps: nil)
        XCTAssertThrowsError(try trainer.run()) { error in
            guard case let TrainingError.nonFinite(step, micro, quantity, _) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(step, 2)
            XCTAssertEqual(micro, 1)
            XCTAssertEqual(quantity, "loss")
            XCTAssertTrue("\(error)".contains("--max-bad-steps"), "\(error)")
        }
        XCTAssertTrue(trainer.engine.adapter.parameters.allSatisfy(\.isFinite))
    }

    func testMaxBadStepsSkipsTheBadStepWithoutAnUpdateAndTrainsTheRest() throws {
        let trainer = try poisonedTrainer(maxBadSteps: 1)
        var steps: [Int] = [], skipped: [Int] = []
        var before: [Float] = []
        let summary = try trainer.run(onEvent: { event in
            switch event {
            case let .step(r): steps.append(r.step); if r.step == 1 { before = trainer.engine.adapter.parameters }
            case let .skipped(TrainingError.nonFinite(step, _, _, _)): skipped.append(step)
                // Nothing was applied for the skipped step: the adapter is what step 1 left.
                XCTAssertEqual(trainer.engine.adapter.parameters, before)
            default: break
            }
        })
        XCTAssertEqual(steps, [1, 3])
        XCTAssertEqual(skipped, [2])
        XCTAssertEqual(summary.steps, 3)
        XCTAssertEqual(trainer.position.badSteps, 1)
        XCTAssertTrue(trainer.engine.adapter.parameters.allSatisfy(\.isFinite))
        XCTAssertNotEqual(trainer.engine.adapter.parameters, before, "step 3 trained")
        var s = settings()
        s.maxBadSteps = -1
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("'max-bad-steps'"), "\($0)") }
    }
}
