import Model
import Training
import XCTest

/// Settings that cannot run on a base model are refused naming the flag, before any memory is reserved.
final class TrainingLimitTests: XCTestCase {
    /// D 32, F 64, 4 heads of 8 (2 kv heads), 2 layers, context 256.
    private let config = LlamaConfig(vocabSize: 48, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 2,
                                     headDim: 8, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 256,
                                     tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2])

    private func field(_ settings: TrainingSettings, file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            try settings.validate(for: config)
            XCTFail("accepted", file: file, line: line)
        } catch let TrainingError.invalidConfig(field, _) {
            return field
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
        return nil
    }

    func testAbsurdSettingsAreRefusedNamingTheFlag() {
        var s = TrainingSettings()
        s.lora.rank = 100_000_000
        XCTAssertEqual(field(s), "rank")
        s = TrainingSettings()
        s.lora.rank = 17  // k_proj and v_proj are [16, 32]
        XCTAssertEqual(field(s), "rank")
        s.lora.targets = [.q, .o, .gate, .up, .down]
        XCTAssertNoThrow(try s.validate(for: config))
        s.lora.rankPattern = ["model.layers.1.mlp.down_proj": 1_000_000]
        XCTAssertEqual(field(s), "rank_pattern")
        for (change, flag) in [({ (s: inout TrainingSettings) in s.batchSize = 1_000_000_000 }, "batch-size"),
                               ({ $0.gradientAccumulation = 1 << 40 }, "grad-accum"),
                               ({ $0.epochs = 1 << 40 }, "epochs"),
                               ({ $0.maxSteps = 1 << 40 }, "max-steps"),
                               ({ $0.maxSequenceLength = 1 << 30 }, "max-seq-len")] {
            var t = TrainingSettings()
            t.lora.rank = 4
            change(&t)
            XCTAssertEqual(field(t), flag)
        }
    }

    func testDefaultsAndTheDefaultSequenceLengthOnASmallContextAreAccepted() throws {
        var s = TrainingSettings()
        s.lora.rank = 16
        XCTAssertNoThrow(try s.validate(for: config))  // max-seq-len 1024 > context 256 is only a truncation length
        s.maxSequenceLength = 2048
        XCTAssertEqual(field(s), "max-seq-len")
    }
}
