import ArgumentParser
import Foundation
import Model
import Kernels
import Service

extension QuantizationMode: ExpressibleByArgument {}

/// Options shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "The base model: an HF directory, a .gguf file, or a URL of either (fetched and cached).")
    var model: String

    @Option(name: .long, help: "How linear weights are held: auto (GGUF 4-bit blocks kept, others NF4), keep, nf4, int8, none (fp32).")
    var quant: QuantizationMode = .auto

    @Option(name: .long, help: "Threads for every pool, OpenBLAS's included (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func load() throws -> LanguageModel {
        Parallel.configure(threads: threads)
        return try LanguageModel.load(path: model, quantization: quant)
    }
}

/// `--adapter`: a PEFT adapter directory applied over the base model.
struct AdapterOptions: ParsableArguments {
    @Option(name: .long, help: "A PEFT adapter directory, else a registry adapter: TASK, TASK@N or TASK@ALIAS.")
    var adapter: String?

    func adapters(for model: LanguageModel) throws -> AdapterSet {
        guard let spec = adapter else { return .none }
        let url = URL(fileURLWithPath: (spec as NSString).expandingTildeInPath)
        // A directory when such a path exists, else a registry reference: TASK, TASK@N, TASK@ALIAS
        // (registry location from DATABASE_URL / LORA_DATA_DIR).
        let dir = try RegistryService.adapterDirectory(
            for: url.path, configuration: .resolve(databaseURL: nil, dataDirectory: nil), fallbackReference: spec)
        let a = try TrainingService.loadAdapter(dir, for: model) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        return AdapterSet([a])
    }
}
