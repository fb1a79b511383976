import Foundation
import Model
import Registry
import Service
import ServiceTestSupport
import TestSupport
import Training
import XCTest

/// `lora export --format gguf|ollama` and `lora import FILE.gguf` through the registry, on the
/// tiny GGUF fixture (tiny-llama-tied's weights, arch llama, q/k permuted) and PEFT's own adapter
/// for it (Tests/Fixtures/peft/final-adapter).
final class AdapterExportTests: RegistryTestCase {
    let ggufBase = TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf")

    override func setUpWithError() throws {
        try super.setUpWithError()
        try service.addBaseModel(name: "tiny-gguf", source: ggufBase, actor: "a")
        try service.importAdapter(task: "peft", directory: TestPaths.fixture("peft/final-adapter"), base: "tiny-gguf", actor: "a")
    }

    func testGGUFExportImportsBackToTheSameAdapter() throws {
        let out = scratch.appendingPathComponent("out")
        let r = try service.exportAdapter("peft@1", to: out, format: .gguf)
        XCTAssertEqual(r.files, [out.appendingPathComponent("adapter.gguf").path])
        let v = try service.importGGUFAdapter(task: "back", file: out.appendingPathComponent("adapter.gguf"), base: "tiny-gguf", actor: "a")
        XCTAssertEqual(v.reference, "back@1")
        XCTAssertEqual(v.tags["source_format"], "gguf")
        let config = try ModelLoader.loadConfig(ggufBase)
        let original = try PEFTAdapter.load(from: TestPaths.fixture("peft/final-adapter"), base: config).adapter
        let imported = try PEFTAdapter.load(from: try service.resolve("back@1").directory, base: config).adapter
        // PEFT's final-adapter is plain LoRA: nothing is folded, so the round trip is exact.
        XCTAssertEqual(imported.pairs.map(\.scaling), original.pairs.map(\.scaling))
        XCTAssertEqual(imported.parameters, original.parameters)
        // An existing file is refused without overwrite, and replaced with it.
        XCTAssertThrowsError(try service.exportAdapter("peft@1", to: out, format: .gguf)) {
            XCTAssertEqual($0 as? AdapterExportError, .exists(path: out.appendingPathComponent("adapter.gguf").path))
        }
        XCTAssertNoThrow(try service.exportAdapter("peft@1", to: out, format: .gguf, dtype: .f16, overwrite: true))
        XCTAssertEqual(try GGUFFile(out.appendingPathComponent("adapter.gguf")).tensors.first?.type, .f16)
    }

    func testOllamaModelfileNamesTheBaseAndTheAdapter() throws {
        let out = scratch.appendingPathComponent("ollama")
        _ = try service.exportAdapter("peft@1", to: out, format: .ollama)
        let text = try String(contentsOf: out.appendingPathComponent("Modelfile"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines[0], "FROM \(ggufBase.standardizedFileURL.path)")
        XCTAssertTrue(lines[0].dropFirst(5).hasPrefix("/"), "absolute path")
        XCTAssertEqual(lines[1], "ADAPTER ./adapter.gguf")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter.gguf").path))
        // The tiny model's template is ChatML: a TEMPLATE block (closed) and the stop string.
        XCTAssertEqual(lines[2], "TEMPLATE \"\"\"{{- range .Messages }}<|im_start|>{{ .Role }}")
        XCTAssertTrue(text.contains("<|im_start|>assistant\n\"\"\"\nPARAMETER stop \"<|im_end|>\"\n"), text)
        // Every directive is a known Modelfile instruction.
        var inBlock = false
        for l in lines where !l.isEmpty {
            if inBlock { if l.hasSuffix("\"\"\"") { inBlock = false }; continue }
            let word = l.split(separator: " ").first.map(String.init) ?? ""
            XCTAssertTrue(["FROM", "ADAPTER", "TEMPLATE", "PARAMETER", "SYSTEM"].contains(word), l)
            if l.hasPrefix("TEMPLATE \"\"\"") && !l.dropFirst(12).hasSuffix("\"\"\"") { inBlock = true }
        }
        XCTAssertFalse(inBlock, "unterminated TEMPLATE")

        let copied = scratch.appendingPathComponent("ollama-copy")
        let r = try service.exportAdapter("peft@1", to: copied, format: .ollama, copyBase: true)
        XCTAssertEqual(r.files.count, 3)
        XCTAssertEqual(try Data(contentsOf: copied.appendingPathComponent("base.gguf")), try Data(contentsOf: ggufBase))
        XCTAssertTrue(try String(contentsOf: copied.appendingPathComponent("Modelfile"), encoding: .utf8).hasPrefix("FROM ./base.gguf\nADAPTER ./adapter.gguf\n"))
    }

    func testOllamaRefusesABaseThatIsNotGGUF() throws {
        let hf = TestPaths.fixture("models/tiny-llama-tied")
        try service.addBaseModel(name: "tiny-hf", source: hf, actor: "a")
        try service.importAdapter(task: "hf", directory: TestPaths.fixture("peft/final-adapter"), base: "tiny-hf", actor: "a")
        XCTAssertThrowsError(try service.exportAdapter("hf@1", to: scratch.appendingPathComponent("o"), format: .ollama)) {
            guard case AdapterExportError.baseNotGGUF("tiny-hf", let source)? = $0 as? AdapterExportError else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains(source))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("o/adapter.gguf").path), "nothing half-written")
        // gguf works for an HF base (arch llama by llama.cpp's converter's rule).
        let out = scratch.appendingPathComponent("g")
        _ = try service.exportAdapter("hf@1", to: out, format: .gguf)
        XCTAssertEqual(try GGUFFile(out.appendingPathComponent("adapter.gguf")).metadata["general.architecture"], .string("llama"))
    }

    /// An adapter written by llama.cpp's own convert_lora_to_gguf.py (scripts/fixtures/llamacpp/
    /// make_converter_import_fixture.py, from Tests/Fixtures/export/adapter's F16 tensors under a
    /// plain config) imports as exactly that PEFT adapter: same ranks and scalings, A as is, B's q/k
    /// rows un-permuted (F16 in, F16 out: no rounding anywhere).
    func testAnAdapterConvertedByLlamaCppImportsAsThePEFTAdapterItCameFrom() throws {
        try service.addBaseModel(name: "smollm2", source: TestPaths.defaultModel, actor: "a")
        let v = try service.importGGUFAdapter(task: "converted", file: TestPaths.fixture("export/converted/adapter.gguf"),
                                              base: "smollm2", actor: "a")
        let plain = scratch.appendingPathComponent("plain")
        try FileManager.default.createDirectory(at: plain, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestPaths.fixture("export/adapter/adapter_model.safetensors"),
                                         to: plain.appendingPathComponent("adapter_model.safetensors"))
        try FileManager.default.copyItem(at: TestPaths.fixture("export/converted/plain_adapter_config.json"),
                                         to: plain.appendingPathComponent("adapter_config.json"))
        let config = try ModelLoader.loadConfig(TestPaths.defaultModel)
        let expected = try PEFTAdapter.load(from: plain, base: config).adapter
        let imported = try PEFTAdapter.load(from: try service.resolve(v.reference).directory, base: config).adapter
        XCTAssertEqual(imported.pairs.map(\.rank), expected.pairs.map(\.rank))
        XCTAssertEqual(imported.pairs.map(\.scaling), expected.pairs.map(\.scaling))
        XCTAssertEqual(imported.parameters, expected.parameters)
    }
}
