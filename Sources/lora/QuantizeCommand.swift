import ArgumentParser
import Fetch
import Foundation
import Kernels
import Model

/// `lora quantize --model SRC --output DIR`: NF4 (bitsandbytes-exact) once, saved as a bnb-4bit HF checkpoint.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize a base model to NF4 and save it as a bitsandbytes 4-bit HF checkpoint directory.",
        discussion: "DIR gets model.safetensors (packed NF4 linears with their bitsandbytes state; embeddings, norms "
            + "and an untied lm_head in fp32), config.json with quantization_config, generation_config.json and the "
            + "tokenizer files (built from the GGUF metadata for a GGUF source). Loading DIR with --quant auto uses the "
            + "stored NF4 as is; transformers + bitsandbytes load it too. DIR must not exist; it appears only when complete.")

    @Option(name: .long, help: "The source model: an HF directory, a .gguf file, or a URL of either (fetched and cached).")
    var model: String

    @Option(name: .long, help: "The directory to create.")
    var output: String

    @Option(name: .long, help: "Threads for every pool, OpenBLAS's included (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func run() throws {
        Parallel.configure(threads: threads)
        let local = ModelFetcher.isRemote(model) ? try ModelFetcher().fetchModel(model).path : model
        let src = URL(fileURLWithPath: (local as NSString).expandingTildeInPath)
        let out = URL(fileURLWithPath: (output as NSString).expandingTildeInPath)
        let loaded = try ModelLoader.load(src, quantization: .nf4)
        try BnB4bitWriter.write(loaded, to: out)
        print(out.standardizedFileURL.path)
    }
}
