import ArgumentParser
import Foundation
import Kernels
import Model
import Service

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold an adapter into the dequantized base (W + scaling·B·A) and write an HF directory or a GGUF file.")

    @Option(name: .long, help: "The base model: an HF directory, a .gguf file, or a URL of either.") var model: String
    @Option(name: .long, help: "A PEFT adapter directory, a GGUF LoRA file, or a registry adapter: TASK, TASK@N or TASK@ALIAS.")
    var adapter: String
    @Option(name: .long, help: "hf: OUT is a directory (config, safetensors, tokenizer, chat template); gguf: OUT is a .gguf file.")
    var output: String
    @Option(name: .long, help: "hf or gguf (from an HF source, gguf needs a byte-level BPE tokenizer).") var format: String = "hf"
    @Option(name: .long, help: "Weight type: f32, f16 or bf16.") var dtype: String = "f32"
    @Option(name: .long, help: "Threads for every pool, OpenBLAS's included (default: all cores).") var threads: Int?
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        guard ModelMerge.Format(rawValue: format) != nil else { throw ValidationError("--format \(format): expected hf or gguf") }
        guard MergedModelWriter.DType(rawValue: dtype) != nil else { throw ValidationError("--dtype \(dtype): expected f32, f16 or bf16") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func run() throws {
        Parallel.configure(threads: threads)
        let url = URL(fileURLWithPath: (adapter as NSString).expandingTildeInPath)
        let dir = try RegistryService.adapterDirectory(
            for: url.path, configuration: .resolve(databaseURL: nil, dataDirectory: nil), fallbackReference: adapter)
        let r = try ModelMerge.merge(modelPath: model, adapter: dir, output: URL(fileURLWithPath: (output as NSString).expandingTildeInPath),
                                     format: ModelMerge.Format(rawValue: format)!, dtype: MergedModelWriter.DType(rawValue: dtype)!) {
            FileHandle.standardError.write(Data(($0 + "\n").utf8))
        }
        if json { try printJSON(r) } else { print("merged \(r.mergedLayers) adapted layers into \(r.output) (\(r.format), \(r.dtype))") }
    }
}
