import Foundation
import Kernels
import Quantization

/// Writes a model held densely (every linear weight a `DenseWeight`, the embedding in fp32: what
/// `--quant none` loads, and what merging an adapter produces) as an HF directory (config.json,
/// model.safetensors, tokenizer files, chat template) or as one GGUF file (F32 or F16 matrices,
/// norms F32 as llama.cpp's converter keeps them, q/k rows permuted back to llama.cpp's order for
/// arch llama, the source GGUF's metadata and tokenizer copied, or an HF source's written as llama.cpp's
/// converter writes them).
public enum MergedModelWriter {
    public enum DType: String, CaseIterable, Sendable {
        case f32, f16, bf16
        var safetensors: String { self == .f32 ? "F32" : (self == .f16 ? "F16" : "BF16") }
        var ggml: GGMLType { self == .f32 ? .f32 : (self == .f16 ? .f16 : .bf16) }
        var torchName: String { self == .f32 ? "float32" : (self == .f16 ? "float16" : "bfloat16") }
    }

    static func dense(_ w: LinearWeight, _ name: String) throws -> DenseWeight {
        guard let d = w as? DenseWeight else { throw ModelError.invalidArgument("\(name) is not held in fp32; load the source with --quant none") }
        return d
    }

    static func encode(_ floats: [Float], _ dtype: DType) -> Data {
        switch dtype {
        case .f32: return floats.withUnsafeBytes { Data($0) }
        case .f16:
            var d = Data(capacity: floats.count * 2)
            for f in floats { withUnsafeBytes(of: Half.fromFloat(f).littleEndian) { d.append(contentsOf: $0) } }
            return d
        case .bf16:
            var d = Data(capacity: floats.count * 2)
            for f in floats { withUnsafeBytes(of: GGUFWriter.bf16(f).littleEndian) { d.append(contentsOf: $0) } }
            return d
        }
    }

    /// Writes `model` as an HF checkpoint directory at `output` (which must not exist): built in a
    /// temporary sibling directory and renamed into place.
    public static func writeHuggingFace(_ model: LoadedModel, dtype: DType, to output: URL) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output.path) else {
            throw ModelError.invalidArgument("\(output.path) already exists; choose a new output path")
        }
        let c = model.config, w = model.weights
        guard w.quantizedEmbedding == nil, w.embedding.count == c.vocabSize * c.hiddenSize else {
            throw ModelError.invalidArgument("\(model.sourcePath.path): the embedding table is not held in fp32; load with --quant none")
        }
        let names = TensorNames.huggingFace
        var tensors: [SafetensorsWriter.Tensor] = []
        func add(_ name: String, _ shape: [Int], _ floats: [Float], _ t: DType) {
            tensors.append(SafetensorsWriter.Tensor(name: name, dtype: t.safetensors, shape: shape, bytes: encode(floats, t)))
        }
        add(names.embedding, [c.vocabSize, c.hiddenSize], w.embedding, dtype)
        add(names.finalNorm, [c.hiddenSize], w.finalNorm, dtype)
        for (i, layer) in w.layers.enumerated() {
            add(names.layer(i, .attnNorm), [c.hiddenSize], layer.attnNorm, dtype)
            add(names.layer(i, .mlpNorm), [c.hiddenSize], layer.mlpNorm, dtype)
            for (t, b) in [(TensorNames.LayerTensor.qBias, layer.qBias), (.kBias, layer.kBias), (.vBias, layer.vBias)] {
                if let b { add(names.layer(i, t), [b.count], b, dtype) }
            }
            for (t, lw) in [(TensorNames.LayerTensor.q, layer.q), (.k, layer.k), (.v, layer.v), (.o, layer.o),
                            (.gate, layer.gate), (.up, layer.up), (.down, layer.down)] {
                let d = try dense(lw, names.layer(i, t))
                add(names.layer(i, t), [d.outFeatures, d.inFeatures], d.data, dtype)
            }
        }
        if !c.tieWordEmbeddings {
            let head = try dense(w.lmHead, names.lmHead)
            add(names.lmHead, [c.vocabSize, c.hiddenSize], head.data, dtype)
        }
        tensors.sort { $0.name < $1.name }

        let parent = output.deletingLastPathComponent()
        try? fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let tmp = parent.appendingPathComponent(".\(output.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do { try fm.createDirectory(at: tmp, withIntermediateDirectories: false) } catch {
            throw ModelError.invalidArgument("cannot create \(tmp.path): \(error.localizedDescription)")
        }
        do {
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: tmp.appendingPathComponent("model.safetensors"))
            var config: [String: Any]
            let sourceConfig = model.sourcePath.appendingPathComponent("config.json")
            if model.format == .huggingFace, let data = fm.contents(atPath: sourceConfig.path),
               let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
                config = obj
                config.removeValue(forKey: "quantization_config")
            } else {
                config = try BnB4bitWriter.derivedConfig(c)
            }
            config["dtype"] = dtype.torchName
            config.removeValue(forKey: "torch_dtype")
            config["transformers_version"] = BnB4bitWriter.transformersVersion
            try BnB4bitWriter.writeJSON(config, to: tmp.appendingPathComponent("config.json"))
            try BnB4bitWriter.writeTokenizerFiles(model, into: tmp)
            if model.format == .huggingFace, let template = model.chatTemplate,
               !fm.fileExists(atPath: tmp.appendingPathComponent("chat_template.jinja").path) {
                try BnB4bitWriter.write(Data(template.utf8), to: tmp.appendingPathComponent("chat_template.jinja"))
            }
            guard rename(tmp.path, output.path) == 0 else {
                throw ModelError.invalidArgument("cannot rename \(tmp.path) to \(output.path): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// Writes `model` as a GGUF file. From a GGUF source its metadata, tokenizer included, is
    /// copied; from an HF checkpoint the architecture keys and the tokenizer's `tokenizer.ggml.*`
    /// keys are written as llama.cpp's converter writes them (`GGUFModelMetadata`; byte-level BPE
    /// tokenizers only). `general.file_type` is llama.cpp's ALL_F32 (0) / MOSTLY_F16 (1) / MOSTLY_BF16 (32).
    public static func writeGGUF(_ model: LoadedModel, dtype: DType, to output: URL) throws {
        guard !FileManager.default.fileExists(atPath: output.path) else {
            throw ModelError.invalidArgument("\(output.path) already exists; choose a new output path")
        }
        let c = model.config, w = model.weights
        guard w.quantizedEmbedding == nil, w.embedding.count == c.vocabSize * c.hiddenSize else {
            throw ModelError.invalidArgument("\(model.sourcePath.path): the embedding table is not held in fp32; load with --quant none")
        }
        var out = GGUFWriter()
        let arch: String
        var ropeFreqs: (shape: [Int], values: [Float])?
        switch model.format {
        case .gguf:
            let source = try GGUFFile(model.sourcePath)
            for key in source.metadataKeys where !["general.alignment", "general.file_type", "general.quantization_version"].contains(key) {
                out.set(key, source.metadata[key]!)
            }
            arch = source.metadata["general.architecture"]?.string ?? "llama"
            if let rf = source.tensor(named: "rope_freqs.weight") { ropeFreqs = (rf.shape, try source.floats(rf.name)) }
        case .huggingFace:
            let (metadata, factors) = try GGUFModelMetadata.fromHuggingFace(model)
            for (k, v) in metadata { out.set(k, v) }
            arch = c.ggufArchitecture
            if let factors { ropeFreqs = ([factors.count], factors) }
        }
        out.set("general.file_type", .uint32(dtype == .f32 ? 0 : (dtype == .f16 ? 1 : 32)))
        let permute = arch == "llama"
        let names = TensorNames.gguf
        try out.add(names.embedding, shape: [c.vocabSize, c.hiddenSize], values: w.embedding, type: dtype.ggml)
        try out.add(names.finalNorm, shape: [c.hiddenSize], values: w.finalNorm)
        if let ropeFreqs { try out.add("rope_freqs.weight", shape: ropeFreqs.shape, values: ropeFreqs.values) }
        for (i, layer) in w.layers.enumerated() {
            try out.add(names.layer(i, .attnNorm), shape: [c.hiddenSize], values: layer.attnNorm)
            try out.add(names.layer(i, .mlpNorm), shape: [c.hiddenSize], values: layer.mlpNorm)
            for (t, b) in [(TensorNames.LayerTensor.qBias, layer.qBias), (.kBias, layer.kBias), (.vBias, layer.vBias)] {
                if let b { try out.add(names.layer(i, t), shape: [b.count], values: b) }
            }
            for (t, lw) in [(TensorNames.LayerTensor.q, layer.q), (.k, layer.k), (.v, layer.v), (.o, layer.o),
                            (.gate, layer.gate), (.up, layer.up), (.down, layer.down)] {
                let d = try dense(lw, names.layer(i, t))
                var data = d.data
                if permute, t == .q || t == .k {
                    data = permuteToGGUF(data, heads: t == .q ? c.numHeads : c.numKVHeads, headDim: c.headDim, columns: d.inFeatures)
                }
                try out.add(names.layer(i, t), shape: [d.outFeatures, d.inFeatures], values: data, type: dtype.ggml)
            }
        }
        if !c.tieWordEmbeddings {
            let head = try dense(w.lmHead, names.lmHead)
            try out.add(names.lmHead, shape: [c.vocabSize, c.hiddenSize], values: head.data, type: dtype.ggml)
        }
        try out.write(to: output)
    }

    /// HF row order -> llama.cpp's (the inverse of `WeightLoader.unpermuteRows`).
    static func permuteToGGUF(_ data: [Float], heads: Int, headDim E: Int, columns: Int) -> [Float] {
        var out = data
        for hf in 0..<(heads * E) {
            let g = (hf / E) * E + LlamaQKPermutation.ggufRow(forHFRow: hf % E, headDim: E)
            out.replaceSubrange(g * columns..<(g + 1) * columns, with: data[hf * columns..<(hf + 1) * columns])
        }
        return out
    }
}
