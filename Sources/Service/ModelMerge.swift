import Foundation
import Fetch
import Model
import Tokenizer
import Training

/// `lora merge`: an adapter folded into the dequantized (fp32) base and written as an HF
/// directory or a GGUF file.
public enum ModelMerge {
    public enum Format: String, CaseIterable, Sendable { case hf, gguf }

    public struct Result: Sendable, Encodable {
        public let output: String
        public let format: String
        public let dtype: String
        public let mergedLayers: Int
    }

    /// `modelPath` is what `--model` takes (path or URL); `adapter` a PEFT directory or a GGUF
    /// LoRA file. The output must not exist; it appears whole or not at all.
    public static func merge(modelPath: String, adapter: URL, output: URL, format: Format,
                             dtype: MergedModelWriter.DType, warn: (String) -> Void) throws -> Result {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output.path) else {
            throw ModelError.invalidArgument("\(output.path) already exists; choose a new output path")
        }
        var local = modelPath
        if ModelFetcher.isRemote(modelPath) { local = try ModelFetcher().fetchModel(modelPath).path }
        let url = URL(fileURLWithPath: (local as NSString).expandingTildeInPath)
        var loaded = try ModelLoader.load(url, quantization: .none)
        // The adapter is read against the base exactly as `--adapter` reads it (without decode rows' fp16
        // copies: merging reads the fp32 parameters).
        let lm = LanguageModel(model: LlamaModel(config: loaded.config, weights: loaded.weights), tokenizer: try tokenizer(loaded),
                               source: url, chatTemplate: loaded.chatTemplate)
        let a = try TrainingService.readAdapter(adapter, for: lm, warn: warn)
        try LoRAMerge.merge(a, into: &loaded)
        switch format {
        case .hf: try MergedModelWriter.writeHuggingFace(loaded, dtype: dtype, to: output)
        case .gguf: try MergedModelWriter.writeGGUF(loaded, dtype: dtype, to: output)
        }
        return Result(output: output.path, format: format.rawValue, dtype: dtype.rawValue, mergedLayers: a.pairs.count)
    }

    static func tokenizer(_ loaded: LoadedModel) throws -> Tokenizer {
        switch loaded.tokenizer {
        case let .huggingFace(json, config): return try Tokenizer(tokenizerJSON: json, tokenizerConfig: config)
        case let .gguf(data): return try Tokenizer(gguf: data)
        }
    }
}
