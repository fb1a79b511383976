import Foundation
import TestSupport
import XCTest

/// `lora import` refuses an adapter holding NaN or Inf, naming the tensor; nothing is registered.
final class HostileImportCLITests: JobsCLITestCase {
    func testAdapterWithANaNIsRefusedNamingTheTensor() throws {
        let base = scratch.appendingPathComponent("base")
        try RegistryFixtures.writeTinyBase(to: base)
        try lora(["models", "add", "tiny", base.path])
        let adapter = scratch.appendingPathComponent("nan-adapter")
        try RegistryFixtures.writeAdapter(to: adapter, seed: 3, rank: 2, modules: ["q_proj"])
        // The first tensor written (at data offset 0) is layer 0's q_proj lora_A: its first value becomes NaN.
        let tensors = adapter.appendingPathComponent("adapter_model.safetensors")
        var bytes = try Data(contentsOf: tensors)
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { bytes.replaceSubrange(8 + headerLength..<12 + headerLength, with: $0) }
        try bytes.write(to: tensors)

        let r = try lora(["import", "nan-task", adapter.path, "--base", "tiny"], expectFailure: true)
        XCTAssertTrue(r.stderr.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
            && r.stderr.contains("non-finite"), r.stderr)
        XCTAssertFalse(try lora(["tasks"]).stdout.contains("nan-task"))

        let clean = scratch.appendingPathComponent("clean-adapter")
        try RegistryFixtures.writeAdapter(to: clean, seed: 3, rank: 2, modules: ["q_proj"])
        try lora(["import", "clean-task", clean.path, "--base", "tiny"])
    }
}
