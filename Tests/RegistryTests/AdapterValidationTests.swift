import Foundation
import Model
import Registry
import Service
import TestSupport
import ServiceTestSupport
import Training
import XCTest

final class AdapterValidationTests: RegistryTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try addTinyBase()
    }

    func testAnAdapterForAnotherBaseShapeIsRefusedWithAHint() throws {
        let dir = scratch.appendingPathComponent("wrong")
        // q_proj's lora_B of a model with a wider attention: [16, r] instead of [8, r].
        try RegistryFixtures.writeAdapter(to: dir, seed: 1, rank: 2, modules: ["q_proj"],
                                  shapeOverride: ["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": [16, 2]])
        XCTAssertThrowsError(try service.importAdapter(task: "t", directory: dir, actor: "a")) { e in
            XCTAssertTrue("\(e)".contains("expected [8, 2]") && "\(e)".contains("wrong base model"), "\(e)")
        }
        XCTAssertThrowsError(try service.versions(task: "t"), "nothing registered")
    }

    func testRankMustMatchTheConfig() throws {
        let dir = scratch.appendingPathComponent("rank")
        try RegistryFixtures.writeAdapter(to: dir, seed: 1, rank: 2, modules: ["v_proj"],
                                  shapeOverride: ["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight": [3, 8]])
        XCTAssertThrowsError(try service.importAdapter(task: "t", directory: dir, actor: "a"))
    }

    func testOnlyLoraAdaptersAreAccepted() throws {
        let dir = scratch.appendingPathComponent("ia3")
        try RegistryFixtures.writeAdapter(to: dir, seed: 1, rank: 2, modules: ["q_proj"], peftType: "IA3")
        XCTAssertThrowsError(try service.importAdapter(task: "t", directory: dir, actor: "a")) { e in
            guard case ModelError.unsupportedConfig(_, "peft_type", _) = e else { return XCTFail("\(e)") }
        }
    }

    func testAMissingFactorIsReported() throws {
        let dir = scratch.appendingPathComponent("missing")
        try RegistryFixtures.writeAdapter(to: dir, seed: 1, rank: 2, modules: ["q_proj"])
        // Declare v_proj too, whose tensors are absent.
        let cfg = dir.appendingPathComponent("adapter_config.json")
        let text = try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(of: "[\"q_proj\"]", with: "[\"q_proj\", \"v_proj\"]")
        try text.write(to: cfg, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try service.importAdapter(task: "t", directory: dir, actor: "a")) { e in
            guard case ModelError.missingTensor(_, let name, _) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(name.contains("v_proj.lora_A"), name)
        }
    }

    func testAllLinearAdaptersOfTheRightShapeAreAccepted() throws {
        let dir = scratch.appendingPathComponent("all")
        try RegistryFixtures.writeAdapter(to: dir, seed: 1, rank: 4,
                                  modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        XCTAssertEqual(try service.importAdapter(task: "t", directory: dir, actor: "a").loraConfig["r"]?.intValue, 4)
    }

    func testADirectoryWithoutTheAdapterFilesIsRefused() throws {
        let dir = scratch.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try service.importAdapter(task: "t", directory: dir, actor: "a")) { e in
            XCTAssertTrue("\(e)".contains("adapter_config.json"), "\(e)")
        }
    }

    /// Adapters written by PEFT itself (scripts/fixtures, Tests/Fixtures/peft) for the tiny
    /// fixture model: all-linear, rank_pattern/alpha_pattern, rsLoRA. They import, and come back
    /// byte for byte.
    func testAdaptersWrittenByPEFTImportAgainstTheirBaseAndRoundTrip() throws {
        try service.addBaseModel(name: "tiny-llama-tied", source: TestPaths.fixture("models/tiny-llama-tied"), actor: "a")
        for (i, name) in ["final-adapter", "initial-adapter-patterns", "initial-adapter-rslora"].enumerated() {
            let src = TestPaths.fixture("peft/\(name)")
            let v = try service.importAdapter(task: "peft", directory: src, base: "tiny-llama-tied", actor: "a")
            XCTAssertEqual(v.version, i + 1)
            let dir = try service.resolve("peft@\(v.version)").directory
            for f in AdapterArchive.requiredFiles {
                XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent(f)), try Data(contentsOf: src.appendingPathComponent(f)), f)
            }
        }
        // The same adapter against the other (tiny test) base: refused, with the hint.
        XCTAssertThrowsError(try service.importAdapter(task: "peft", directory: TestPaths.fixture("peft/final-adapter"),
                                                       base: "tiny", actor: "a")) { e in
            XCTAssertTrue("\(e)".contains("wrong base model"), "\(e)")
        }
    }

    /// Registry validation and loading share one parser: a rank_pattern whose first key (in the
    /// file's order) covers layer 0 gives rank 2 there, which both accept; layers_to_transform is
    /// refused by both, naming the field.
    func testImportAndLoadingAgreeOnPatternOrderAndLayerSubsets() throws {
        let dir = scratch.appendingPathComponent("ordered")
        try RegistryFixtures.writeAdapter(to: dir, seed: 3, rank: 2, modules: ["q_proj"])
        let cfg = dir.appendingPathComponent("adapter_config.json")
        let text = try String(contentsOf: cfg, encoding: .utf8)
        let ordered = text.replacingOccurrences(of: "\"r\": 2,", with: "\"r\": 8, \"rank_pattern\": {\"q_proj\": 2, \"model.layers.0.self_attn.q_proj\": 4},")
        try ordered.write(to: cfg, atomically: true, encoding: .utf8)
        XCTAssertEqual(try service.importAdapter(task: "t", directory: dir, actor: "a").version, 1)
        let loaded = try PEFTAdapter.load(from: dir, base: try ModelLoader.loadConfig(scratch.appendingPathComponent("base-tiny")))
        XCTAssertEqual(loaded.adapter.pairs.map(\.rank), [2, 2])

        try text.replacingOccurrences(of: "\"r\": 2,", with: "\"r\": 2, \"layers_to_transform\": [0],")
            .write(to: cfg, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try service.importAdapter(task: "t", directory: dir, actor: "a")) { e in
            guard case ModelError.unsupportedConfig(_, "layers_to_transform", _) = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try PEFTAdapter.load(from: dir, base: try ModelLoader.loadConfig(scratch.appendingPathComponent("base-tiny")))) { e in
            guard case ModelError.unsupportedConfig(_, "layers_to_transform", _) = e else { return XCTFail("\(e)") }
        }
    }
}
