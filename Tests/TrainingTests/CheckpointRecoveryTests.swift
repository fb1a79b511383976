import Foundation
import Model
import Training
import XCTest

/// After a crash: temporary checkpoint directories of dead processes are removed, and resuming falls
/// back to the newest checkpoint that restores when the newest one is unreadable.
final class CheckpointRecoveryTests: XCTestCase {
    var dir: URL!
    override func setUp() { dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-rec-\(UUID().uuidString)") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    private func trainer(_ model: LlamaModel) throws -> Trainer {
        var s = TrainingSettings()
        s.lora = LoRAConfig(rank: 2, alpha: 4, dropout: 0)
        s.batchSize = 2
        s.maxSteps = 3
        let records = (0..<6).map { i in
            let toks = (0..<5).map { (3 + 5 * $0 + 7 * i) % 29 }
            return TokenizedRecord(tokens: toks, scored: toks.indices.map { $0 > 0 })
        }
        let a = LoRAAdapter(config: s.lora, base: model.config)
        a.initialize(seed: 2)
        return try Trainer(model: model, adapter: a, settings: s, train: records)
    }

    func testResumeFallsBackToThePreviousCheckpointWhenTheNewestIsUnreadable() throws {
        let model = GradientTests.tinyModel(seed: 9)
        let base = PEFTAdapter.BaseIdentity(name: "tiny", sha256: nil)
        let first = try trainer(model)
        var afterStep2: [Float] = []
        try first.run(onStep: { t in
            _ = try Checkpoint.save(t, base: base, output: self.dir, keep: nil)
            if t.position.step == 2 { afterStep2 = t.engine.adapter.parameters }
        })
        let checkpoints = try Checkpoint.list(dir)
        XCTAssertEqual(checkpoints.map(\.lastPathComponent), ["checkpoint-1", "checkpoint-2", "checkpoint-3"])
        // A torn write of the newest checkpoint's optimizer state.
        try Data("not safetensors".utf8).write(to: checkpoints[2].appendingPathComponent(Checkpoint.tensorsFile))

        let resumed = try trainer(model)
        let (used, skipped) = try Checkpoint.restoreNewest(resumed, output: dir)
        XCTAssertEqual(used.lastPathComponent, "checkpoint-2")
        XCTAssertEqual(skipped.map(\.0.lastPathComponent), ["checkpoint-3"])
        XCTAssertEqual(resumed.position.step, 2)
        XCTAssertEqual(resumed.engine.adapter.parameters, afterStep2)

        // Every checkpoint unreadable: an error naming each.
        for c in checkpoints { try Data("x".utf8).write(to: c.appendingPathComponent(Checkpoint.tensorsFile)) }
        XCTAssertThrowsError(try Checkpoint.restoreNewest(try trainer(model), output: dir)) { error in
            XCTAssertTrue("\(error)".contains("no readable checkpoint") && "\(error)".contains("checkpoint-1"), "\(error)")
        }
    }

    func testAnUnreadableCheckpointStateIsReportedByFileAndFieldNotAsARawDecodingError() throws {
        let model = GradientTests.tinyModel(seed: 9)
        let base = PEFTAdapter.BaseIdentity(name: "tiny", sha256: nil)
        try trainer(model).run(onStep: { t in _ = try Checkpoint.save(t, base: base, output: self.dir, keep: nil) })
        let checkpoints = try Checkpoint.list(dir)
        XCTAssertEqual(checkpoints.count, 3)
        // A torn state file (the newest) and one whose `optimizerStep` is text (the one before).
        let torn = checkpoints[2].appendingPathComponent(Checkpoint.stateFile)
        let text = try Data(contentsOf: torn)
        try text.prefix(text.count / 2).write(to: torn)
        let typed = checkpoints[1].appendingPathComponent(Checkpoint.stateFile)
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: typed)) as? [String: Any])
        XCTAssertNotNil(object["optimizerStep"])
        object["optimizerStep"] = "two"
        try JSONSerialization.data(withJSONObject: object).write(to: typed)

        let (used, skipped) = try Checkpoint.restoreNewest(try trainer(model), output: dir)
        XCTAssertEqual(used.lastPathComponent, "checkpoint-1")
        XCTAssertEqual(skipped.count, 2)
        let messages = skipped.map { "\($0.1)" }
        for (m, file) in zip(messages, [torn, typed]) {
            XCTAssertTrue(m.contains(file.path) && m.contains("unreadable: "), m)
            for raw in ["dataCorrupted", "typeMismatch", "Context(", "codingPath", "Swift.", "NSCocoaErrorDomain"] {
                XCTAssertFalse(m.contains(raw), "raw Swift error text '\(raw)' in: \(m)")
            }
        }
        // Where the bytes stop being JSON, and which field has the wrong type.
        XCTAssertTrue(messages[0].contains("not valid JSON: Unexpected end of file"), messages[0])
        XCTAssertTrue(messages[1].contains("invalid JSON at field 'optimizerStep'"), messages[1])
    }

    func testTemporaryDirectoriesOfDeadProcessesAreRemovedAndLiveOnesKept() throws {
        let fm = FileManager.default
        let dead = dir.appendingPathComponent(".checkpoint-5.tmp-2147483646")   // above any pid_max
        let live = dir.appendingPathComponent(".checkpoint-6.tmp-\(getppid())")
        let kept = dir.appendingPathComponent("checkpoint-4")
        for d in [dead, live, kept] { try fm.createDirectory(at: d, withIntermediateDirectories: true) }
        XCTAssertEqual(Checkpoint.removeStaleTemporaries(dir).map(\.lastPathComponent), [dead.lastPathComponent])
        XCTAssertFalse(fm.fileExists(atPath: dead.path))
        XCTAssertTrue(fm.fileExists(atPath: live.path))
        XCTAssertTrue(fm.fileExists(atPath: kept.path))
    }
}
