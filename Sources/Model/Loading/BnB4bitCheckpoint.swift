import Foundation
import Quantization

/// Pre-quantized bitsandbytes 4-bit checkpoints: what transformers 5.24 + bitsandbytes 0.50.2 save for a
/// model loaded with `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
/// bnb_4bit_use_double_quant=True)` (checked against `save_pretrained` output, see
/// scripts/fixtures/make_bnb_interop_fixtures.py).
///
/// config.json carries `quantization_config` {"quant_method": "bitsandbytes", "load_in_4bit": true,
/// "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true, "bnb_4bit_quant_storage": "uint8", ...}.
/// Each quantized linear `P.weight` is stored as (bitsandbytes `QuantState.as_dict(packed=True)`):
///
/// | tensor | dtype | shape |
/// |---|---|---|
/// | `P.weight` | U8 | [numel / 2, 1] packed codes, first element in the high nibble |
/// | `P.weight.absmax` | U8 | [blocks]: 8-bit block scales (double quantization) |
/// | `P.weight.quant_map` | F32 | [16]: the NF4 code |
/// | `P.weight.nested_absmax` | F32 | [ceil(blocks / 256)] |
/// | `P.weight.nested_quant_map` | F32 | [256]: bitsandbytes' signed dynamic map |
/// | `P.weight.quant_state.bitsandbytes__nf4` | U8 | the UTF-8 bytes of `json.dumps({"quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"})` |
///
/// Embeddings, norms and lm_head stay unquantized (transformers skips lm_head; a tied head is not saved).
public enum BnB4bitCheckpoint {
    /// Suffixes of the state tensors beside a packed `weight`.
    public static let absmaxSuffix = ".absmax"
    public static let quantMapSuffix = ".quant_map"
    public static let nestedAbsmaxSuffix = ".nested_absmax"
    public static let nestedQuantMapSuffix = ".nested_quant_map"
    public static let quantStateSuffix = ".quant_state.bitsandbytes__nf4"

    /// The `quantization_config` transformers 5.24 writes for bnb 4-bit NF4 with double quantization and
    /// fp32 compute (keys as in `BitsAndBytesConfig.to_dict()`).
    public static let quantizationConfig: [String: Any] = [
        "_load_in_4bit": true,
        "_load_in_8bit": false,
        "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_quant_storage": "uint8",
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": true,
        "llm_int8_enable_fp32_cpu_offload": false,
        "llm_int8_has_fp16_weight": false,
        "llm_int8_skip_modules": NSNull(),
        "llm_int8_threshold": 6.0,
        "load_in_4bit": true,
        "load_in_8bit": false,
        "quant_method": "bitsandbytes",
    ]

    /// Checks a config.json `quantization_config` describes exactly what this code reads: bitsandbytes
    /// 4-bit NF4 with double quantization, packed into uint8. Anything else (fp4, no double quantization,
    /// 8-bit, another quant_method, another storage dtype) is refused naming the field.
    /// `bnb_4bit_compute_dtype` is accepted whatever it says: activations are fp32 here.
    public static func validateConfig(_ value: Any, path: String) throws {
        func refuse(_ field: String, _ reason: String) -> ModelError {
            .unsupportedConfig(path: path, field: "quantization_config.\(field)", reason: reason)
        }
        guard let q = value as? [String: Any] else { throw refuse("", "expected an object, got \(value)") }
        func present(_ k: String) -> Any? { q[k].flatMap { $0 is NSNull ? nil : $0 } }
        let method = present("quant_method") as? String
        guard method == "bitsandbytes" else {
            throw refuse("quant_method", "\(present("quant_method") ?? "(absent)") is not supported (bitsandbytes 4-bit NF4 with double quantization is)")
        }
        let in8 = present("load_in_8bit").flatMap(HFConfigLoader.boolean) ?? false
        guard !in8 else { throw refuse("load_in_8bit", "8-bit (LLM.int8) checkpoints are not supported") }
        guard present("load_in_4bit").flatMap(HFConfigLoader.boolean) == true else {
            throw refuse("load_in_4bit", "expected true, got \(present("load_in_4bit") ?? "(absent)")")
        }
        let type = present("bnb_4bit_quant_type") as? String ?? "fp4"  // transformers' default
        guard type == "nf4" else { throw refuse("bnb_4bit_quant_type", "\(type) is not supported (nf4 is)") }
        guard present("bnb_4bit_use_double_quant").flatMap(HFConfigLoader.boolean) == true else {
            throw refuse("bnb_4bit_use_double_quant", "\(present("bnb_4bit_use_double_quant") ?? "(absent: false)") is not supported: only double-quantized NF4 (8-bit absmax) is read")
        }
        if let s = present("bnb_4bit_quant_storage") {
            guard s as? String == "uint8" else { throw refuse("bnb_4bit_quant_storage", "\(s) is not supported (uint8 is)") }
        }
    }

    /// Whether `config.json` in `directory` declares a bitsandbytes 4-bit checkpoint (validated).
    static func isQuantized(directory: URL) throws -> Bool {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let q = json["quantization_config"], !(q is NSNull) else { return false }
        try validateConfig(q, path: url.path)
        return true
    }

    /// The stored NF4 state of linear weight `name` (e.g. "model.layers.0.self_attn.q_proj.weight") of
    /// shape [out, in], or nil when the checkpoint stores that weight unquantized (a float `name` with no
    /// state beside it, e.g. a module in `llm_int8_skip_modules`). Every state tensor is checked against
    /// the others, the quant-state JSON and `expectedShape`; errors name the tensor.
    static func storedNF4(_ c: SafetensorsCollection, name: String, expectedShape: [Int]) throws -> NF4Tensor? {
        let stateName = name + quantStateSuffix
        guard let info = c.info(name) else {
            throw ModelError.missingTensor(path: c.path(for: name), name: name, expectedShape: expectedShape)
        }
        if info.dtype != "U8" && !c.contains(stateName) && !c.contains(name + absmaxSuffix) { return nil }
        func path(_ n: String) -> String { c.path(for: n) }
        func bad(_ n: String, _ reason: String) -> ModelError { .malformedFile(path: path(n), offset: nil, reason: "tensor '\(n)': \(reason)") }
        func require(_ n: String, dtype: String, count: Int?) throws -> UnsafeRawBufferPointer {
            guard let i = c.info(n) else { throw ModelError.missingTensor(path: path(n), name: n, expectedShape: count.map { [$0] } ?? []) }
            guard i.dtype == dtype else { throw ModelError.unsupportedTensorType(path: path(n), name: n, type: "\(i.dtype) (expected \(dtype))") }
            let numel = i.shape.reduce(1, *)
            if let count, numel != count {
                throw ModelError.wrongShape(path: path(n), name: n, expected: [count], actual: i.shape)
            }
            return try c.rawBytes(n)
        }
        func floats(_ raw: UnsafeRawBufferPointer) -> [Float] {
            (0..<raw.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }

        // The quant-state JSON first: it says what the other tensors must be.
        let stateBytes = try require(stateName, dtype: "U8", count: nil)
        guard let state = (try? JSONSerialization.jsonObject(with: Data(stateBytes))) as? [String: Any] else {
            throw bad(stateName, "not a JSON object")
        }
        func field(_ k: String) throws -> Any {
            guard let v = state[k], !(v is NSNull) else { throw bad(stateName, "missing \"\(k)\"") }
            return v
        }
        func int(_ k: String) throws -> Int {
            let v = try field(k)
            guard let x = HFConfigLoader.number(v), let i = Int(exactly: x) else { throw bad(stateName, "\"\(k)\" is \(v), not an integer") }
            return i
        }
        let qt = try field("quant_type")
        guard qt as? String == "nf4" else { throw bad(stateName, "quant_type \(qt) is not supported (nf4 is)") }
        let bs = try int("blocksize")
        guard bs == NF4Tensor.blockSize else { throw bad(stateName, "blocksize \(bs) is not supported (\(NF4Tensor.blockSize) is)") }
        // dtype is the original weight's dtype, which bitsandbytes' dequantize_4bit rounds its fp32 output to.
        // Here weights stay fp32 (code * absmax) for every dtype: exact for float32; for float16/bfloat16
        // each weight may differ from bitsandbytes' by that rounding (2^-11 / 2^-8 relative).
        let dt = try field("dtype")
        guard let dts = dt as? String, ["float32", "float16", "bfloat16"].contains(dts) else {
            throw bad(stateName, "dtype \(dt) is not supported (float32, float16, bfloat16 are)")
        }
        guard let shapeAny = try field("shape") as? [Any] else { throw bad(stateName, "\"shape\" is not a list") }
        let shape = try shapeAny.map { v -> Int in
            guard let x = HFConfigLoader.number(v), let i = Int(exactly: x) else { throw bad(stateName, "shape \(shapeAny) is not a list of integers") }
            return i
        }
        guard shape == expectedShape else {
            throw bad(stateName, "shape \(shape) does not match the config's \(expectedShape)")
        }
        let nbs = try int("nested_blocksize")
        guard nbs == NF4Tensor.nestedBlockSize else {
            throw bad(stateName, "nested_blocksize \(nbs) is not supported (\(NF4Tensor.nestedBlockSize) is)")
        }
        let ndt = try field("nested_dtype")
        guard ndt as? String == "float32" else { throw bad(stateName, "nested_dtype \(ndt) is not supported (float32 is)") }
        let offAny = try field("nested_offset")
        guard let offset = HFConfigLoader.number(offAny).map(Float.init), offset.isFinite else {
            throw bad(stateName, "nested_offset \(offAny) is not a finite number")
        }

        let n = shape.reduce(1, *)
        let blocks = (n + NF4Tensor.blockSize - 1) / NF4Tensor.blockSize
        let nested = (blocks + NF4Tensor.nestedBlockSize - 1) / NF4Tensor.nestedBlockSize
        // The packed codes: U8, [numel / 2, 1] as transformers saves Params4bit (a flat [numel / 2] is accepted).
        guard info.dtype == "U8" else {
            throw ModelError.unsupportedTensorType(path: path(name), name: name, type: "\(info.dtype) (expected U8 packed 4-bit codes beside \(stateName))")
        }
        let packedCount = (n + 1) / 2
        guard info.shape == [packedCount, 1] || info.shape == [packedCount] else {
            throw ModelError.wrongShape(path: path(name), name: name, expected: [packedCount, 1], actual: info.shape)
        }
        let packed = [UInt8](try c.rawBytes(name))
        let absmaxName = name + absmaxSuffix
        if let ai = c.info(absmaxName), ai.dtype == "F32" {
            throw bad(absmaxName, "F32 block scales mean no double quantization, which is not supported")
        }
        let absmax = [UInt8](try require(absmaxName, dtype: "U8", count: blocks))
        let quantMapName = name + quantMapSuffix
        do {
            try NF4Tensor.validateQuantMap(floats(try require(quantMapName, dtype: "F32", count: 16)))
        } catch let e as QuantizedError {
            throw bad(quantMapName, "\(e)")
        }
        let nestedAbsmax = floats(try require(name + nestedAbsmaxSuffix, dtype: "F32", count: nested))
        let nestedMapName = name + nestedQuantMapSuffix
        let nestedMap = floats(try require(nestedMapName, dtype: "F32", count: 256))
        let reference = BlockwiseDynamic.signedMap
        for i in 0..<256 where nestedMap[i].bitPattern != reference[i].bitPattern {
            throw bad(nestedMapName, "entry \(i) is \(nestedMap[i]), not bitsandbytes' signed dynamic map value \(reference[i])")
        }
        for (i, v) in nestedAbsmax.enumerated() where !v.isFinite {
            throw bad(name + nestedAbsmaxSuffix, "entry \(i) is \(v)")
        }
        do {
            return try NF4Tensor(shape: shape, packed: packed, absmaxCodes: absmax, nestedAbsmax: nestedAbsmax,
                                 offset: offset, nestedCode: reference)
        } catch {
            throw bad(name, "\(error)")
        }
    }
}
