import Foundation
import Kernels
import Model
import Quantization
import TestSupport
import XCTest

/// Pre-quantized bitsandbytes 4-bit checkpoints: transformers' own save (Tests/Fixtures/bnb, written by
/// scripts/fixtures/make_bnb_interop_fixtures.py) loads as stored and matches transformers' logits; our
/// writer reproduces transformers' tensors byte for byte; broken state is refused naming the tensor.
final class BnB4bitCheckpointTests: TemporaryDirectoryTestCase {
    /// Ours and transformers + bitsandbytes on the same dequantized NF4 weights: summation order only
    /// (FP32.tinyModelForward), relative to the logits' scale.
    static let logitTolerance = FP32.tinyModelForward
    let tiny = TestPaths.fixture("models/tiny-llama-tied")
    let theirs = TestPaths.fixture("bnb/tiny-llama-bnb4")
    let q0 = "model.layers.0.self_attn.q_proj.weight"

    struct Logits: Decodable {
        struct Case: Decodable { let name: String; let input_ids: [Int]; let logits: [[Float]] }
        let cases: [Case]
    }

    /// Our quantize of the tiny model, written to a fresh directory.
    func writeOurs(_ name: String = "ours") throws -> URL {
        let out = dir.appendingPathComponent(name)
        try BnB4bitWriter.write(try ModelLoader.load(tiny, quantization: .nf4), to: out)
        return out
    }

    func nf4(_ w: LinearWeight, _ file: StaticString = #filePath, _ line: UInt = #line) throws -> NF4Tensor {
        try XCTUnwrap(w as? NF4Weight, "\(type(of: w)) is not NF4", file: file, line: line).tensor
    }

    func testTransformersSavedCheckpointLoadsAsStoredAndMatchesTransformersLogits() throws {
        let loaded = try ModelLoader.load(theirs, quantization: .auto)
        let model = LlamaModel(config: loaded.config, weights: loaded.weights)
        let ref = try JSONDecoder().decode(Logits.self, from: Data(contentsOf: TestPaths.fixture("bnb/logits.json")))
        XCTAssertFalse(ref.cases.isEmpty)
        let V = loaded.config.vocabSize
        for c in ref.cases {
            let logits = try model.logits(for: c.input_ids)
            let worst = scaledMaxError(Array(logits[0..<(c.input_ids.count * V)]), c.logits.flatMap { $0 })
            XCTAssertLessThanOrEqual(worst, Self.logitTolerance, "case \(c.name)")
        }
        // As stored: the packed bytes are the file's.
        let file = try SafetensorsFile(theirs.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(try nf4(loaded.weights.layers[0].q).packed, [UInt8](try file.rawBytes(q0)))
    }

    func testEveryQuantModeOfAStoredCheckpoint() throws {
        let stored = try ModelLoader.load(theirs, quantization: .nf4)
        let expected = try nf4(stored.weights.layers[1].down).dequantized()
        for mode in [QuantizationMode.auto, .keep] {
            let m = try ModelLoader.load(theirs, quantization: mode)
            XCTAssertEqual(try nf4(m.weights.layers[1].down).packed, try nf4(stored.weights.layers[1].down).packed, "\(mode)")
        }
        let none = try ModelLoader.load(theirs, quantization: .none)
        let dense = try XCTUnwrap(none.weights.layers[1].down as? DenseWeight)
        XCTAssertEqual(dense.data, expected)
        let int8 = try ModelLoader.load(theirs, quantization: .int8)
        XCTAssertTrue(int8.weights.layers[1].down is Int8Weight)
    }

    func testOurWriterReproducesTransformersSaveByteForByte() throws {
        let ours = try SafetensorsFile(try writeOurs().appendingPathComponent("model.safetensors"))
        let ref = try SafetensorsFile(theirs.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(Set(ours.names), Set(ref.names))
        XCTAssertTrue(ref.names.contains(q0 + ".quant_state.bitsandbytes__nf4"))
        for n in ref.names {
            XCTAssertEqual(ours.info(n)?.dtype, ref.info(n)?.dtype, n)
            XCTAssertEqual(ours.info(n)?.shape, ref.info(n)?.shape, n)
            XCTAssertEqual(try ours.data(n), try ref.data(n), n)
        }
    }

    /// Tests/Fixtures/bnb/ours-quantized is what transformers + bitsandbytes were shown to load (interop-check.json):
    /// the writer still writes exactly those files.
    func testOurWriterStillWritesTheFilesTransformersWasCheckedOn() throws {
        let out = try writeOurs()
        let committed = TestPaths.fixture("bnb/ours-quantized")
        let names = try FileManager.default.contentsOfDirectory(atPath: committed.path).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), names)
        for n in names {
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(n)), try Data(contentsOf: committed.appendingPathComponent(n)), n)
        }
    }

    func testOurCheckpointReloadsWithIdenticalWeightsAndLogits() throws {
        let out = try writeOurs()
        let direct = try ModelLoader.load(tiny, quantization: .nf4)
        let reloaded = try ModelLoader.load(out, quantization: .auto)
        XCTAssertEqual(reloaded.config, direct.config)
        for (a, b) in zip(direct.weights.layers, reloaded.weights.layers) {
            for name in LayerWeights.linearNames {
                let ta = try nf4(a.linear(name)!), tb = try nf4(b.linear(name)!)
                XCTAssertEqual(ta.packed, tb.packed, name)
                XCTAssertEqual(ta.absmaxCodes, tb.absmaxCodes, name)
                XCTAssertEqual(ta.nestedAbsmax, tb.nestedAbsmax, name)
                XCTAssertEqual(ta.offset.bitPattern, tb.offset.bitPattern, name)
            }
        }
        let ids = [1, 5, 77, 200, 3, 9, 42]
        let la = try LlamaModel(config: direct.config, weights: direct.weights).logits(for: ids)
        let lb = try LlamaModel(config: reloaded.config, weights: reloaded.weights).logits(for: ids)
        XCTAssertEqual(la, lb)
        // config.json says what transformers needs; the tokenizer files came along.
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        let q = config["quantization_config"] as! [String: Any]
        XCTAssertEqual(q["quant_method"] as? String, "bitsandbytes")
        XCTAssertEqual(q["bnb_4bit_quant_type"] as? String, "nf4")
        for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
    }

    func testEveryFamilyAndFormatRoundTripsWithIdenticalLogits() throws {
        let sources = ["tiny-llama-untied", "tiny-llama-bf16", "tiny-qwen2", "tiny-mistral", "tiny-llama3-rope",
                       "tiny-qwen2-gguf/tiny-qwen2.gguf", "tiny-llama-linear-rope-gguf/tiny-llama-linear-rope.gguf",
                       "tiny-llama-gguf/tiny-llama.gguf"]
        for (k, name) in sources.enumerated() {
            let src = TestPaths.fixture("models/\(name)")
            let out = dir.appendingPathComponent("family-\(k)")
            let direct = try ModelLoader.load(src, quantization: .nf4)
            try BnB4bitWriter.write(direct, to: out)
            let file = try SafetensorsFile(out.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(file.contains("lm_head.weight"), !direct.config.tieWordEmbeddings, name)
            let reloaded = try ModelLoader.load(out, quantization: .auto)
            let ids = [1, 5, 77, 200, 3, 9, 42]
            XCTAssertEqual(try LlamaModel(config: reloaded.config, weights: reloaded.weights).logits(for: ids),
                           try LlamaModel(config: direct.config, weights: direct.weights).logits(for: ids), name)
        }
    }

    func testGGUFRoPEFrequencyFactorsAreRefusedNamingTheField() throws {
        let src = TestPaths.fixture("models/tiny-llama3-rope-gguf/tiny-llama3-rope.gguf")
        let out = dir.appendingPathComponent("llama3-gguf")
        XCTAssertThrowsError(try BnB4bitWriter.write(try ModelLoader.load(src, quantization: .nf4), to: out)) {
            XCTAssertTrue("\($0)".contains("rope_parameters"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    func testWriterRefusesAnExistingOutputAndNonNF4Weights() throws {
        let out = try writeOurs()
        XCTAssertThrowsError(try BnB4bitWriter.write(try ModelLoader.load(tiny, quantization: .nf4), to: out)) {
            XCTAssertTrue("\($0)".contains("already exists"), "\($0)")
        }
        XCTAssertThrowsError(try BnB4bitWriter.write(try ModelLoader.load(tiny, quantization: .none), to: dir.appendingPathComponent("dense"))) {
            XCTAssertTrue("\($0)".contains("not held in NF4"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("dense").path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "temporary directories left behind")
    }

    // MARK: broken checkpoints

    /// A copy of our checkpoint with its tensors edited by `edit` (name -> tensor; nil removes it).
    func broken(_ label: String, _ edit: (inout [String: SafetensorsWriter.Tensor]) -> Void) throws -> URL {
        let src = try writeOurs("src-\(label)")
        let dir = dir.appendingPathComponent(label)
        try FileManager.default.copyItem(at: src, to: dir)
        let file = try SafetensorsFile(src.appendingPathComponent("model.safetensors"))
        var tensors: [String: SafetensorsWriter.Tensor] = [:]
        for n in file.names {
            let i = file.info(n)!
            tensors[n] = SafetensorsWriter.Tensor(name: n, dtype: i.dtype, shape: i.shape, bytes: try file.data(n))
        }
        edit(&tensors)
        try SafetensorsWriter.write(tensors.values.sorted { $0.name < $1.name }, to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }

    func assertLoadFails(_ dir: URL, mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelLoader.load(dir, quantization: .auto), file: file, line: line) { error in
            for p in parts { XCTAssertTrue("\(error)".contains(p), "\(error) does not mention \(p)", file: file, line: line) }
        }
    }

    func testQuantStateWithBlocksize128IsRefusedNamingTheTensor() throws {
        let name = q0 + ".quant_state.bitsandbytes__nf4"
        let dir = try broken("blocksize") { t in
            let json = String(decoding: t[name]!.bytes, as: UTF8.self).replacingOccurrences(of: "\"blocksize\": 64", with: "\"blocksize\": 128")
            t[name] = SafetensorsWriter.Tensor(name: name, dtype: "U8", shape: [json.utf8.count], bytes: Data(json.utf8))
        }
        assertLoadFails(dir, mentions: [name, "blocksize 128"])
    }

    func testWrongQuantMapIsRefusedNamingTheTensor() throws {
        let name = "model.layers.1.mlp.up_proj.weight.quant_map"
        let dir = try broken("quantmap") { t in
            var code = NF4Tensor.code
            code[3] = -0.4  // not NF4
            t[name] = SafetensorsWriter.Tensor(name: name, shape: [16], floats: code)
        }
        assertLoadFails(dir, mentions: [name, "quant_map[3]"])
    }

    func testMissingAbsmaxIsRefusedNamingTheTensor() throws {
        let name = "model.layers.0.mlp.down_proj.weight.absmax"
        let dir = try broken("absmax") { t in t[name] = nil }
        assertLoadFails(dir, mentions: ["missing tensor '\(name)'"])
    }

    func testStateInconsistentWithTheConfigIsRefused() throws {
        let name = "model.layers.0.self_attn.k_proj.weight"
        let shapeDir = try broken("shape") { t in
            let json = String(decoding: t[name + ".quant_state.bitsandbytes__nf4"]!.bytes, as: UTF8.self)
                .replacingOccurrences(of: "\"shape\": [32, 64]", with: "\"shape\": [64, 32]")
            t[name + ".quant_state.bitsandbytes__nf4"] = SafetensorsWriter.Tensor(name: name + ".quant_state.bitsandbytes__nf4", dtype: "U8",
                                                                                 shape: [json.utf8.count], bytes: Data(json.utf8))
        }
        assertLoadFails(shapeDir, mentions: [name + ".quant_state.bitsandbytes__nf4", "[64, 32]", "[32, 64]"])
        let nestedDir = try broken("nested") { t in
            var map = BlockwiseDynamic.signedMap
            map[200] += 0.001
            t[name + ".nested_quant_map"] = SafetensorsWriter.Tensor(name: name + ".nested_quant_map", shape: [256], floats: map)
        }
        assertLoadFails(nestedDir, mentions: [name + ".nested_quant_map", "entry 200"])
        let floatAbsmax = try broken("f32absmax") { t in
            t[name + ".absmax"] = SafetensorsWriter.Tensor(name: name + ".absmax", shape: [32], floats: [Float](repeating: 1, count: 32))
        }
        assertLoadFails(floatAbsmax, mentions: [name + ".absmax", "double quantization"])
    }

    func testOtherQuantizationConfigsAreRefusedNamingTheField() throws {
        let cases: [(String, Any, String)] = [
            ("bnb_4bit_quant_type", "fp4", "quantization_config.bnb_4bit_quant_type"),
            ("bnb_4bit_use_double_quant", false, "quantization_config.bnb_4bit_use_double_quant"),
            ("load_in_8bit", true, "quantization_config.load_in_8bit"),
            ("quant_method", "gptq", "quantization_config.quant_method"),
            ("bnb_4bit_quant_storage", "bfloat16", "quantization_config.bnb_4bit_quant_storage"),
        ]
        let src = try writeOurs()
        for (i, (key, value, field)) in cases.enumerated() {
            let dir = dir.appendingPathComponent("config-\(i)")
            try FileManager.default.copyItem(at: src, to: dir)
            let url = dir.appendingPathComponent("config.json")
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            var q = config["quantization_config"] as! [String: Any]
            q[key] = value
            if key == "load_in_8bit" { q["load_in_4bit"] = false }
            config["quantization_config"] = q
            try JSONSerialization.data(withJSONObject: config).write(to: url)
            assertLoadFails(dir, mentions: [field])
        }
    }
}
