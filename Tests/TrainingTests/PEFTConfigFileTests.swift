import Foundation
import Model
import Training
import XCTest

/// `PEFTConfigFile`, the one adapter_config.json parser of loading and registry validation:
/// rank_pattern / alpha_pattern follow peft 0.21's `get_pattern_key` (first key in the file's
/// order whose `(.*\.)?(KEY)` matches the whole module name wins).
final class PEFTConfigFileTests: XCTestCase {
    func config(_ extra: String) throws -> LoRAConfig {
        let text = #"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]"# + extra + "}"
        return try PEFTConfigFile.parse(Data(text.utf8), path: "cfg.json")
    }

    func testTheFirstMatchingKeyInTheFilesOrderWins() throws {
        let general = try config(#", "rank_pattern": {"q_proj": 2, "model.layers.0.self_attn.q_proj": 4}"#)
        XCTAssertEqual(general.rank(layer: 0, module: .q), 2, "q_proj comes first and matches layer 0 too")
        XCTAssertEqual(general.rank(layer: 1, module: .q), 2)
        XCTAssertEqual(general.rank(layer: 0, module: .v), 8)
        let specific = try config(#", "rank_pattern": {"model.layers.0.self_attn.q_proj": 4, "q_proj": 2}"#)
        XCTAssertEqual(specific.rank(layer: 0, module: .q), 4)
        XCTAssertEqual(specific.rank(layer: 1, module: .q), 2)
        XCTAssertEqual(specific.rankPattern.keys, ["model.layers.0.self_attn.q_proj", "q_proj"])
    }

    func testKeysAreRegularExpressionsMatchedOnWholeDottedSegments() throws {
        let c = try config(#", "rank_pattern": {"layers\\.[01]\\.self_attn\\.q_proj": 3, "proj": 5}, "alpha_pattern": {"v_.*": 4}"#)
        XCTAssertEqual(c.rank(layer: 0, module: .q), 3)
        XCTAssertEqual(c.rank(layer: 1, module: .q), 3)
        XCTAssertEqual(c.rank(layer: 2, module: .q), 8, "layer 2 is not in [01]")
        // "proj" must match a whole dotted segment: (.*\.)?(proj) does not match "...q_proj".
        XCTAssertEqual(c.rank(layer: 2, module: .v), 8)
        XCTAssertEqual(c.scaling(layer: 0, module: .v), 4 / 8)
        XCTAssertEqual(c.scaling(layer: 0, module: .q), 16 / 3)
    }

    func testLayerSubsetsAndBadPatternsAreRefusedNamingTheField() throws {
        for (extra, field) in [(#", "layers_to_transform": [0]"#, "layers_to_transform"),
                               (#", "layers_to_transform": 1"#, "layers_to_transform"),
                               (#", "layers_pattern": "layers""#, "layers_pattern"),
                               (#", "rank_pattern": {"(": 2}"#, "rank_pattern.("),
                               (#", "rank_pattern": {"q_proj": 0}"#, "rank_pattern.q_proj"),
                               (#", "alpha_pattern": {"q_proj": "x"}"#, "alpha_pattern.q_proj")] {
            XCTAssertThrowsError(try config(extra), extra) { e in
                guard case ModelError.unsupportedConfig("cfg.json", let f, _) = e else { return XCTFail("\(e)") }
                XCTAssertEqual(f, field)
            }
        }
        // null and [] mean every layer, as in PEFT.
        XCTAssertNoThrow(try config(#", "layers_to_transform": null"#))
        XCTAssertNoThrow(try config(#", "layers_to_transform": []"#))
    }

    func testWrittenConfigsKeepPatternOrder() throws {
        let c = try config(#", "rank_pattern": {"model.layers.0.self_attn.q_proj": 4, "q_proj": 2}, "alpha_pattern": {"v_proj": 3.5, "model.layers.1.self_attn.v_proj": 1}"#)
        let back = try PEFTConfigFile.parse(try PEFTConfigFile.encode(c, baseName: "b"), path: "x")
        XCTAssertEqual(back, c)
        XCTAssertEqual(back.alphaPattern.keys, ["v_proj", "model.layers.1.self_attn.v_proj"])
    }
}
