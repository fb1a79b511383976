import Model
import TestSupport
import Training
import XCTest

final class OptimizerTests: XCTestCase {
    /// The optimizer's formulas are a handful of fp32 operations per parameter (values of order one):
    /// 16 roundings, relative, bound them against the same formula in Double.
    static let formulaTolerance = FP32.roundings(16)

    func testAdamWFirstStepMovesEachParameterByLrTimesTheGradientSign() {
        var p: [Float] = [1, -2, 0.5]
        let g: [Float] = [0.3, -4, 0]
        var opt = AdamW(parameterCount: 3)
        opt.update(&p, gradients: g, lr: 0.1)
        // m̂ = g, sqrt(v̂) = |g|: the step is lr * g / (|g| + eps).
        assertRelative(Double(p[0]), 1 - 0.1 * 0.3 / (0.3 + 1e-8), within: Self.formulaTolerance)
        assertRelative(Double(p[1]), -2 + 0.1, within: Self.formulaTolerance)
        XCTAssertEqual(p[2], 0.5)
        XCTAssertEqual(opt.step, 1)
    }

    func testAdamWSecondStepFollowsTorchBiasCorrectionAndDecoupledDecay() {
        var p: [Float] = [1]
        var opt = AdamW(parameterCount: 1, weightDecay: 0.1)
        opt.update(&p, gradients: [0.5], lr: 0.01)
        opt.update(&p, gradients: [-0.25], lr: 0.01)
        // The same arithmetic in Double, step by step as torch.optim.AdamW (single tensor) does it.
        var q = 1.0, m = 0.0, v = 0.0
        for (t, g) in [(1.0, 0.5), (2.0, -0.25)] {
            q *= 1 - 0.01 * 0.1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            q -= (0.01 / (1 - pow(0.9, t))) * m / (v.squareRoot() / (1 - pow(0.999, t)).squareRoot() + 1e-8)
        }
        assertRelative(Double(p[0]), q, within: Self.formulaTolerance)
    }

    func testClippingScalesToMaxNormAndReportsTheNormBefore() {
        var g: [Float] = [3, 4]
        let n = GradientClipping.clip(&g, maxNorm: 1)
        assertRelative(Double(n), 5, within: Self.formulaTolerance)
        assertRelative(Double(g[0]), 0.6, within: Self.formulaTolerance)
        assertRelative(Double(g[1]), 0.8, within: Self.formulaTolerance)
        var small: [Float] = [0.1, 0.1]
        GradientClipping.clip(&small, maxNorm: 1)
        XCTAssertEqual(small, [0.1, 0.1])
    }

    func testSchedulesFollowTransformersDefinitions() {
        // total 10, warmup 2
        XCTAssertEqual(LRScheduler.constant.factor(step: 0, warmup: 2, total: 10), 1)
        XCTAssertEqual(LRScheduler.constantWithWarmup.factor(step: 1, warmup: 2, total: 10), 0.5)
        XCTAssertEqual(LRScheduler.constantWithWarmup.factor(step: 5, warmup: 2, total: 10), 1)
        XCTAssertEqual(LRScheduler.linear.factor(step: 0, warmup: 2, total: 10), 0)
        XCTAssertEqual(LRScheduler.linear.factor(step: 6, warmup: 2, total: 10), 0.5)
        XCTAssertEqual(LRScheduler.cosine.factor(step: 2, warmup: 2, total: 10), 1)
        assertRelative(Double(LRScheduler.cosine.factor(step: 6, warmup: 2, total: 10)), 0.5, within: Self.formulaTolerance)
        // 0.5·(1 + cos π): zero up to the fp32 rounding of π and of the cosine near -1 (absolute: the value is 0).
        XCTAssertEqual(Double(LRScheduler.cosine.factor(step: 10, warmup: 2, total: 10)), 0, accuracy: FP32.roundings(2))
        XCTAssertEqual(LRScheduler.warmupSteps(steps: nil, ratio: 0.03, total: 100), 3)
        XCTAssertEqual(LRScheduler.warmupSteps(steps: nil, ratio: 0.03, total: 10), 1)  // ceil
        XCTAssertEqual(LRScheduler.warmupSteps(steps: 5, ratio: 0.03, total: 10), 5)
    }
}

final class TrainerTests: XCTestCase {
    static func records() -> [TokenizedRecord] {
        // A tiny language: after 3 comes 7, after 7 comes 2, ... learnable by the adapter.
        (0..<12).map { i in
            let toks = [3, 7, 2, 9, 11, 4].map { ($0 + i % 3) % 29 }
            return TokenizedRecord(tokens: toks, scored: toks.indices.map { $0 > 0 })
        }
    }

    func settings() -> TrainingSettings {
        var s = TrainingSettings()
        s.lora = LoRAConfig(rank: 4, alpha: 8, dropout: 0)
        s.learningRate = 1e-2
        s.batchSize = 4
        s.epochs = 10
        s.scheduler = .constant
        s.seed = 1
        return s
    }

    func testTrainingLowersTheLossOnATinyModel() throws {
        let model = GradientTests.tinyModel(seed: 4)
        let adapter = LoRAAdapter(config: settings().lora, base: model.config)
        adapter.initialize(seed: 9)
        var losses: [Double] = []
        let trainer = try Trainer(model: model, adapter: adapter, settings: settings(), train: Self.records(), eval: Self.records())
        let before = try trainer.evaluate()
        let summary = try trainer.run { if case let .step(r) = $0 { losses.append(r.loss) } }
        XCTAssertEqual(summary.steps, 30)
        XCTAssertEqual(losses.count, 30)
        XCTAssertLessThan(summary.evalLoss!, before * 0.7, "loss \(before) -> \(summary.evalLoss!)")
    }

    func testSameSeedGivesIdenticalAdaptersAndDropoutMakesADifference() throws {
        func run(_ s: TrainingSettings) throws -> [Float] {
            let model = GradientTests.tinyModel(seed: 4)
            let adapter = LoRAAdapter(config: s.lora, base: model.config)
            adapter.initialize(seed: s.seed)
            try Trainer(model: model, adapter: adapter, settings: s, train: Self.records()).run()
            return adapter.parameters
        }
        var s = settings()
        s.epochs = 2
        s.lora.dropout = 0.1
        let a = try run(s), b = try run(s)
        XCTAssertEqual(a, b)
        s.lora.dropout = 0
        let c = try run(s)
        XCTAssertNotEqual(a, c)
    }

    func testAccumulationNormalizesOverTheWholeAccumulatedBatch() throws {
        // batch 4 x accumulation 1 and batch 2 x accumulation 2 see the same records per step: same update.
        func run(batch: Int, accum: Int) throws -> ([Float], [Double]) {
            let model = GradientTests.tinyModel(seed: 4)
            var s = settings()
            s.batchSize = batch
            s.gradientAccumulation = accum
            s.shuffle = false
            s.epochs = 1
            // Unequal record lengths so a per-micro-batch mean would differ from the global one.
            var recs = Self.records()
            recs[0] = TokenizedRecord(tokens: [3, 7], scored: [false, true])
            recs[5] = TokenizedRecord(tokens: [3, 7, 2, 9, 11, 4, 5, 6, 8], scored: [false] + Array(repeating: true, count: 8))
            let adapter = LoRAAdapter(config: s.lora, base: model.config)
            adapter.initialize(seed: 2)
            var losses: [Double] = []
            try Trainer(model: model, adapter: adapter, settings: s, train: recs).run { if case let .step(r) = $0 { losses.append(r.loss) } }
            return (adapter.parameters, losses)
        }
        let (p1, l1) = try run(batch: 4, accum: 1)
        let (p2, l2) = try run(batch: 2, accum: 2)
        XCTAssertEqual(l1.count, 3)
        // Batch 4 vs 2 + 2 changes sgemm shapes only (GradientTests.reorderedTolerance per step); three
        // AdamW steps at settings()' lr move each parameter within 3 · lr · that of the other run.
        for (a, b) in zip(l2, l1) { assertRelative(a, b, within: GradientTests.reorderedTolerance) }
        let stepTolerance = Float(3 * Double(settings().learningRate) * GradientTests.reorderedTolerance)
        for (a, b) in zip(p1, p2) { XCTAssertEqual(a, b, accuracy: stepTolerance + a.ulp) }
    }
}
