import Kernels
import Model
import TestSupport
import Training
import XCTest

final class GradientTests: XCTestCase {
    /// Norm of (analytic - finite difference) over norm of the finite difference, on sampled parameters.
    static let finiteDifferenceTolerance = 2e-3

    /// Padding and packing change only the sgemm shapes of the same arithmetic (T = 4 vs 9, rows of
    /// one record vs two), and OpenBLAS's summation order changes with the shape and the CPU. Forward
    /// and backward through these 2-layer models are at most 32 dependent products (q/k/v, scores,
    /// attention, o, gate/up, down per layer, the head, LoRA's A and B; twice for the backward), each
    /// over at most 32 terms (width 16, FFN 24, q width 32, rows of at most 9).
    static let reorderedTolerance = FP32.chain(products: 32, innerDimension: 32)

    /// The training tests' random model (TestSupport's RandomModel.training).
    static func tinyModel(seed: UInt64, tied: Bool = true, heads: Int = 4, kvHeads: Int = 2, headDim: Int = 8,
                          biases: Bool = false, slidingWindow: Int? = nil, ropeScaling: RoPEScaling? = nil) -> LlamaModel {
        RandomModel.training(seed: seed, tied: tied, heads: heads, kvHeads: kvHeads, headDim: headDim,
                             biases: biases, slidingWindow: slidingWindow, ropeScaling: ropeScaling)
    }

    static func batch() -> MicroBatch {
        // Two rows of different lengths (padding), one packed row of two records.
        let r1 = TokenizedRecord(tokens: [3, 7, 2, 9, 11, 4], scored: [false, true, true, true, true, true])
        let r2 = TokenizedRecord(tokens: [5, 1, 8], scored: [false, false, true])
        let r3 = TokenizedRecord(tokens: [6, 6], scored: [false, true])
        return MicroBatch.packed([[r1], [r2, r3]], length: 6)
    }

    func testLoRAGradientsMatchFloat64FiniteDifferencesThroughTheWholeStack() throws {
        for (tied, heads, kv, e) in [(true, 4, 2, 8), (false, 3, 1, 6)] {
            try checkGradients(Self.tinyModel(seed: 21, tied: tied, heads: heads, kvHeads: kv, headDim: e), "tied \(tied) heads \(heads)/\(kv)")
        }
    }

    /// Qwen2's frozen q/k/v biases, Mistral's sliding window (3 is shorter than the 6-token rows,
    /// so it cuts attention inside records and packed rows), llama3 and linear RoPE scaling.
    func testLoRAGradientsMatchFiniteDifferencesWithBiasesSlidingWindowAndScaledRope() throws {
        let llama3 = RoPEScaling.llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64)
        let variants: [(String, LlamaModel)] = [
            ("biases + llama3 rope", Self.tinyModel(seed: 22, biases: true, ropeScaling: llama3)),
            ("window 3 + linear rope", Self.tinyModel(seed: 23, tied: false, heads: 3, kvHeads: 1, headDim: 6,
                                                      slidingWindow: 3, ropeScaling: .linear(factor: 4))),
            ("biases + window 2", Self.tinyModel(seed: 24, biases: true, slidingWindow: 2)),
        ]
        for (name, model) in variants {
            if model.config.ropeScaling != nil {
                // The scaled frequencies are the ones the model (and DoubleReference) use.
                XCTAssertNotEqual(model.rope.invFreq, RoPE(headDim: model.config.headDim, theta: 10000).invFreq, name)
            }
            try checkGradients(model, name)
        }
    }

    /// Rows longer than the attention's row block (`LlamaModel.attentionRowBlock`, 64: query rows go in
    /// blocks, each against the keys up to the block's end, and the attention's (record, head) pairs are
    /// split over the pool): a row of 150 packed tokens (blocks of 64, 64 and 22) whose records of 60, 60
    /// and 30 tokens start inside the blocks, and a padded row of 41, with and without a sliding window
    /// shorter than a block. Loss and gradients against the Float64 reference.
    func testAttentionRowBlocksGiveTheReferenceLossAndGradients() throws {
        XCTAssertEqual(LlamaModel.attentionRowBlock, 64, "the rows below are sized for blocks of 64")
        func record(_ n: Int, _ seed: Int) -> TokenizedRecord {
            let ids = (0..<n).map { 1 + (($0 * 7 + seed * 5 + 3) % 28) }
            return TokenizedRecord(tokens: ids, scored: ids.indices.map { $0 > 0 })
        }
        let batch = MicroBatch.packed([[record(60, 1), record(60, 2), record(30, 3)], [record(41, 4)]], length: 150)
        XCTAssertEqual(batch.length, 150)
        // Attention sums run over at most one record's 60 visible keys (the rest are exact zeros).
        let tolerance = FP32.chain(products: 32, innerDimension: 64)
        // RandomModel.training's model with room for 150 positions (packed records continue the row's positions).
        func model(seed: UInt64, tied: Bool, heads: Int, kvHeads: Int, headDim: Int, slidingWindow: Int?) -> LlamaModel {
            RandomModel.make(seed: seed, vocab: 29, d: 16, f: 24, layers: 2, heads: heads, kvHeads: kvHeads, headDim: headDim,
                             tied: tied, weightScale: 0.4, normScale: 0.3, rmsNormEps: 1e-5, maxPositions: 160, bosTokenId: nil,
                             eosTokenIds: [1], biases: false, slidingWindow: slidingWindow, ropeScaling: nil)
        }
        try checkGradients(model(seed: 25, tied: true, heads: 4, kvHeads: 2, headDim: 8, slidingWindow: nil),
                           "row blocks", batch: batch, tolerance: tolerance)
        try checkGradients(model(seed: 26, tied: false, heads: 3, kvHeads: 1, headDim: 6, slidingWindow: 20),
                           "row blocks, window 20", batch: batch, tolerance: tolerance)
    }

    /// The training engine keeps no attention output: the backward rebuilds it (`attentionOutput`) from
    /// the saved q, k, v with the forward's own attention, and it must be the bits the forward multiplied.
    /// Rows of 150 (several row blocks, packed records) through one block, kept vs rebuilt.
    func testRebuiltAttentionOutputHasTheForwardsBits() throws {
        let model = Self.tinyModel(seed: 27)
        let c = model.config
        func record(_ n: Int, _ seed: Int) -> TokenizedRecord {
            let ids = (0..<n).map { 1 + (($0 * 11 + seed * 3 + 2) % 28) }
            return TokenizedRecord(tokens: ids, scored: ids.indices.map { $0 > 0 })
        }
        let batch = MicroBatch.packed([[record(60, 1), record(60, 2), record(30, 3)], [record(41, 4)]], length: 150)
        let N = batch.count
        let rows = BlockRows.records(batch.rows, length: batch.length, positions: batch.positions,
                                     firstKey: batch.visibleStart, adapters: .none)
        let ws = Workspace()
        ws.plan(config: c, rows: rows, saving: true)
        let kept = BlockActivations(keepingNorms: false, keepingAttention: true)
        let rebuilt = BlockActivations(keepingNorms: false, keepingAttention: false)
        kept.plan(c, rows: N); rebuilt.plan(c, rows: N)
        var x1 = [Float](repeating: 0, count: N * c.hiddenSize)
        x1.withUnsafeMutableBufferPointer { x in
            for i in 0..<N { model.weights.embed(batch.tokens[i], dim: c.hiddenSize, into: x.baseAddress! + i * c.hiddenSize) }
        }
        var x2 = x1
        x1.withUnsafeMutableBufferPointer { model.blockForward(0, rows: rows, x: $0.baseAddress!, workspace: ws, saving: kept) }
        x2.withUnsafeMutableBufferPointer { model.blockForward(0, rows: rows, x: $0.baseAddress!, workspace: ws, saving: rebuilt) }
        XCTAssertEqual(x1.map(\.bitPattern), x2.map(\.bitPattern), "the block's output does not depend on keeping")
        let att = model.attentionOutput(0, rows: rows, saved: rebuilt, workspace: ws)
        let keptAtt = model.attentionOutput(0, rows: rows, saved: kept, workspace: ws)
        XCTAssertEqual(keptAtt, UnsafePointer(kept.att.pointer))
        let n = N * c.qDim
        XCTAssertEqual((0..<n).map { att[$0].bitPattern }, (0..<n).map { keptAtt[$0].bitPattern })
        XCTAssertTrue((0..<n).contains { keptAtt[$0] != 0 }, "a non-trivial attention output")
    }

    func checkGradients(_ model: LlamaModel, _ label: String, batch: MicroBatch = batch(),
                        tolerance: Double = reorderedTolerance) throws {
        do {
            let adapter = LoRAAdapter(config: LoRAConfig(rank: 3, alpha: 6, dropout: 0), base: model.config)
            adapter.initialize(seed: 5)
            // Non-zero B so every A gets a gradient.
            var rng = SeededGenerator(seed: 77)
            for p in adapter.pairs { for i in 0..<p.bCount { adapter.parameters[p.bOffset + i] = Float(rng.nextUnitFloat() - 0.5) * 0.4 } }
            let engine = TrainingEngine(model: model, adapter: adapter)
            let scale = 1 / Float(batch.scoredCount)
            let loss = try engine.accumulate(batch, lossScale: scale, dropoutSeed: 0)
            let params = adapter.parameters.map(Double.init)
            let refLoss = DoubleReference.loss(model: model, adapter: adapter, params: params, batch: batch, lossScale: 1)
            // fp32 against the Float64 reference: each of the chain's products rounds once per term.
            assertRelative(loss.sum, refLoss, within: tolerance, label)
            XCTAssertEqual(loss.scored, batch.scoredCount)

            var num = 0.0, den = 0.0
            var idx = SeededGenerator(seed: 3)
            var sample = Set<Int>()
            // Every pair's A and B, a few entries each.
            for p in adapter.pairs {
                for _ in 0..<3 {
                    sample.insert(p.aOffset + Int(idx.next() % UInt64(p.aCount)))
                    sample.insert(p.bOffset + Int(idx.next() % UInt64(p.bCount)))
                }
            }
            for i in sample {
                let h = 1e-5
                var plus = params, minus = params
                plus[i] += h; minus[i] -= h
                let fd = (DoubleReference.loss(model: model, adapter: adapter, params: plus, batch: batch, lossScale: Double(scale))
                        - DoubleReference.loss(model: model, adapter: adapter, params: minus, batch: batch, lossScale: Double(scale))) / (2 * h)
                num += (Double(engine.gradients[i]) - fd) * (Double(engine.gradients[i]) - fd)
                den += fd * fd
            }
            XCTAssertGreaterThan(den, 0)
            XCTAssertLessThan((num / den).squareRoot(), Self.finiteDifferenceTolerance, label)
        }
    }

    /// The padding tests' model and adapter (non-zero B, so every A has a gradient).
    static func paddingCase() -> (LlamaModel, LoRAAdapter) {
        let model = tinyModel(seed: 8)
        let adapter = LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, dropout: 0), base: model.config)
        adapter.initialize(seed: 1)
        for p in adapter.pairs { for i in 0..<p.bCount { adapter.parameters[p.bOffset + i] = 0.05 * Float(i % 7) - 0.1 } }
        return (model, adapter)
    }

    func testPaddingChangesNoRealTokenLossOrGradient() throws {
        let (model, adapter) = Self.paddingCase()
        let rec = TokenizedRecord(tokens: [3, 7, 2, 9], scored: [false, true, true, true])
        let alone = TrainingEngine(model: model, adapter: adapter)
        let l1 = try alone.accumulate(MicroBatch.padded([rec]), lossScale: 1, dropoutSeed: 0)
        let padded = TrainingEngine(model: model, adapter: adapter)
        let l2 = try padded.accumulate(MicroBatch.packed([[rec]], length: 9), lossScale: 1, dropoutSeed: 0)
        assertRelative(l2.sum, l1.sum, within: Self.reorderedTolerance, "loss")
        XCTAssertEqual(l1.scored, l2.scored)
        assertNormRelative(padded.gradients, alone.gradients, within: Self.reorderedTolerance, "LoRA gradients")
    }

    /// Exact where the arithmetic is the same: at one shape, what the padding positions hold changes
    /// no bit of the loss or of any gradient (they are masked, unscored, and attend only to themselves).
    func testPaddingContentChangesNoBitOfLossOrGradients() throws {
        let (model, adapter) = Self.paddingCase()
        let short = TokenizedRecord(tokens: [3, 7, 2, 9], scored: [false, true, true, true])
        let long = TokenizedRecord(tokens: [5, 1, 8, 4, 4, 6, 2], scored: [false, true, true, true, true, true, true])
        let batch = MicroBatch.padded([short, long])
        var other = batch
        var padding = 0
        for i in 0..<batch.count where i < batch.length && i >= short.tokens.count {
            other.tokens[i] = 11 + i   // any valid id instead of 0
            padding += 1
        }
        XCTAssertEqual(padding, 3)
        let e1 = TrainingEngine(model: model, adapter: adapter), e2 = TrainingEngine(model: model, adapter: adapter)
        let l1 = try e1.accumulate(batch, lossScale: 1, dropoutSeed: 0)
        let l2 = try e2.accumulate(other, lossScale: 1, dropoutSeed: 0)
        XCTAssertEqual(l1.sum, l2.sum)
        XCTAssertEqual(e1.gradients, e2.gradients)
        XCTAssertTrue(e1.gradients.contains { $0 != 0 })
    }

    func testPackedRecordsGiveTheSameLossAsSeparateRows() throws {
        let model = Self.tinyModel(seed: 9)
        let adapter = LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, dropout: 0), base: model.config)
        adapter.initialize(seed: 2)
        let a = TokenizedRecord(tokens: [3, 7, 2], scored: [false, true, true])
        let b = TokenizedRecord(tokens: [4, 4, 8, 1], scored: [false, true, true, true])
        let e1 = TrainingEngine(model: model, adapter: adapter), e2 = TrainingEngine(model: model, adapter: adapter)
        let sep = try e1.accumulate(MicroBatch.padded([a, b]), lossScale: 1, dropoutSeed: 0)
        let packed = try e2.accumulate(MicroBatch.packed([[a, b]], length: 7), lossScale: 1, dropoutSeed: 0)
        assertRelative(packed.sum, sep.sum, within: Self.reorderedTolerance, "loss")
        assertNormRelative(e2.gradients, e1.gradients, within: Self.reorderedTolerance, "LoRA gradients")
    }

    func testTrainingForwardLossEqualsInferenceScoring() throws {
        let model = Self.tinyModel(seed: 10)
        let adapter = LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, dropout: 0), base: model.config)
        adapter.initialize(seed: 3)
        for p in adapter.pairs { for i in 0..<p.bCount { adapter.parameters[p.bOffset + i] = 0.03 } }
        let rec = TokenizedRecord(tokens: [3, 7, 2, 9, 11], scored: [false, true, true, true, true])
        let eval = try TrainingEngine(model: model, adapter: adapter).evaluate(MicroBatch.padded([rec]))
        let inference = try model.negativeLogLikelihood(rec, adapters: AdapterSet([adapter]))
        // The training forward and the inference forward are different code over different shapes.
        assertRelative(eval.sum, inference.sum, within: Self.reorderedTolerance)
    }
}

extension GradientTests {
    func testGradientCheckpointingGivesIdenticalLossAndGradientsWithDropout() throws {
        let model = Self.tinyModel(seed: 44)
        let adapter = LoRAAdapter(config: LoRAConfig(rank: 3, alpha: 6, dropout: 0.2), base: model.config)
        adapter.initialize(seed: 4)
        for p in adapter.pairs { for i in 0..<p.bCount { adapter.parameters[p.bOffset + i] = Float(i % 5) * 0.02 - 0.04 } }
        let plain = TrainingEngine(model: model, adapter: adapter)
        let ckpt = TrainingEngine(model: model, adapter: adapter, gradientCheckpointing: true)
        let l1 = try plain.accumulate(Self.batch(), lossScale: 0.1, dropoutSeed: 99)
        let l2 = try ckpt.accumulate(Self.batch(), lossScale: 0.1, dropoutSeed: 99)
        XCTAssertEqual(l1.sum, l2.sum)
        XCTAssertEqual(plain.gradients, ckpt.gradients)
        XCTAssertTrue(plain.gradients.contains { $0 != 0 })
    }
}
