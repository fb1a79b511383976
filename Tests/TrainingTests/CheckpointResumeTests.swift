import Foundation
import Model
import TestSupport
import Training
import XCTest

final class CheckpointResumeTests: XCTestCase {
    var dir: URL!
    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
    }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    static func records() -> [TokenizedRecord] {
        (0..<14).map { i in
            let n = 3 + i % 5
            let toks = (0..<n).map { (3 + 5 * $0 + 7 * i) % 29 }
            return TokenizedRecord(tokens: toks, scored: toks.indices.map { $0 > 0 })
        }
    }

    func settings() -> TrainingSettings {
        var s = TrainingSettings()
        s.lora = LoRAConfig(rank: 3, alpha: 6, dropout: 0.1)
        s.learningRate = 5e-3
        s.batchSize = 2
        s.gradientAccumulation = 3
        s.epochs = 3
        s.seed = 17
        s.shuffle = true
        s.scheduler = .cosine
        s.warmupSteps = 2
        s.warmupRatio = nil
        return s
    }

    func trainer(_ model: LlamaModel, _ s: TrainingSettings) throws -> Trainer {
        let a = LoRAAdapter(config: s.lora, base: model.config)
        a.initialize(seed: s.seed)
        return try Trainer(model: model, adapter: a, settings: s, train: Self.records(), eval: Array(Self.records().prefix(3)))
    }

    /// Interrupted between micro-batches of one accumulation, mid-epoch, with shuffling and dropout:
    /// resuming from the checkpoint ends at the same adapter as an uninterrupted run.
    func testResumeFromAnInterruptionInsideAnAccumulationEqualsAnUninterruptedRun() throws {
        let model = GradientTests.tinyModel(seed: 31)
        let s = settings()
        let full = try trainer(model, s)
        var fullLosses: [Double] = []
        try full.run(onEvent: { if case let .step(r) = $0 { fullLosses.append(r.loss) } })

        let base = PEFTAdapter.BaseIdentity(name: "tiny", sha256: nil)
        let first = try trainer(model, s)
        var micro = 0
        var losses: [Double] = []
        XCTAssertThrowsError(try first.run(onEvent: { if case let .step(r) = $0 { losses.append(r.loss) } },
                                           shouldStop: { micro += 1; return micro == 8 },  // inside step 4's accumulation
                                           onStop: { try Checkpoint.save($0, base: base, output: self.dir, keep: 2) })) {
            XCTAssertTrue($0 is Trainer.Interrupted)
        }
        let saved = try Checkpoint.list(dir)
        XCTAssertEqual(saved.map(\.lastPathComponent), ["checkpoint-3-1"], "after 3 steps and 1 of 3 micro-batches")
        XCTAssertGreaterThan(first.position.step, 0)
        XCTAssertLessThan(first.position.cursor, first.microBatchesPerEpoch, "interrupted mid-epoch")

        let resumed = try trainer(model, s)
        try Checkpoint.restore(resumed, from: saved.last!)
        try resumed.run(onEvent: { if case let .step(r) = $0 { losses.append(r.loss) } })
        XCTAssertEqual(losses.count, fullLosses.count)
        // Exact: the resumed run does the same arithmetic on the same shapes from the saved state
        // (adapter, optimizer moments, accumulated gradients, data position and RNG streams).
        XCTAssertEqual(losses, fullLosses)
        XCTAssertEqual(resumed.engine.adapter.parameters, full.engine.adapter.parameters)
        XCTAssertEqual(resumed.optimizer, full.optimizer)
    }

    func testPeriodicCheckpointsKeepTheNewestKAndResumeRefusesOtherSettings() throws {
        let model = GradientTests.tinyModel(seed: 32)
        var s = settings()
        s.gradientAccumulation = 1
        s.epochs = 1
        let t = try trainer(model, s)
        try t.run(onStep: { tr in
            if tr.position.step % 2 == 0 { try Checkpoint.save(tr, base: .init(name: "tiny", sha256: nil), output: self.dir, keep: 2) }
        })
        XCTAssertEqual(try Checkpoint.list(dir).map(\.lastPathComponent), ["checkpoint-4", "checkpoint-6"])
        var other = s
        other.learningRate = 1e-3
        XCTAssertThrowsError(try Checkpoint.restore(try trainer(model, other), from: try Checkpoint.list(dir).last!)) {
            XCTAssertTrue("\($0)".contains("other settings"), "\($0)")
        }
    }

    func testPackingGivesTheSameLossAndUpdateAsUnpackedRecords() throws {
        let model = GradientTests.tinyModel(seed: 33)
        var s = settings()
        s.lora.dropout = 0
        s.gradientAccumulation = 1
        s.shuffle = false
        s.maxSteps = 1
        s.batchSize = 14        // every record in one micro-batch
        s.maxSequenceLength = 200
        let plain = try trainer(model, s)
        s.packing = true        // every record in one packed row
        let packed = try trainer(model, s)
        XCTAssertEqual(packed.microBatchesPerEpoch, 1)
        var l1 = 0.0, l2 = 0.0
        try plain.run(onEvent: { if case let .step(r) = $0 { l1 = r.loss } })
        try packed.run(onEvent: { if case let .step(r) = $0 { l2 = r.loss } })
        // Packing changes the sgemm shapes (GradientTests.reorderedTolerance). One AdamW step moves each
        // parameter by lr · g / (|g| + eps), within lr of any reordering's result times its relative error.
        assertRelative(l2, l1, within: GradientTests.reorderedTolerance, "loss")
        let stepTolerance = Float(Double(s.learningRate) * GradientTests.reorderedTolerance)
        for (a, b) in zip(plain.engine.adapter.parameters, packed.engine.adapter.parameters) {
            XCTAssertEqual(a, b, accuracy: stepTolerance + a.ulp)
        }
    }
}
