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

/// `--adapter`: a PEFT adapter directory, else a registry adapter resolved and loaded as `lora serve`
/// does (Service's `AdapterArgument`: `ModelResolver` + `AdapterCache`).
struct AdapterOptions: ParsableArguments {
    @Option(name: .long, help: "A PEFT adapter directory, else a registry adapter: TASK, TASK@N or TASK@ALIAS.")
    var adapter: String?

    @Option(name: .customLong("database-url"), help: "With a registry --adapter: PostgreSQL URL (default: $DATABASE_URL, else the embedded cluster).")
    var databaseURL: String?

    @Option(name: .customLong("data-dir"), help: "With a registry --adapter: data directory (default: $LORA_DATA_DIR, else /var/lib/lora for root, else ~/.local/share/lora).")
    var dataDir: String?

    func adapters(for model: LanguageModel) throws -> AdapterSet {
        guard let spec = adapter else { return .none }
        do {
            let loaded = try AdapterArgument.load(spec, directory: (spec as NSString).expandingTildeInPath,
                                                  configuration: .resolve(databaseURL: databaseURL, dataDirectory: dataDir),
                                                  model: model, inspector: CLIInspector.make()) {
                FileHandle.standardError.write(Data(($0 + "\n").utf8))
            }
            return AdapterSet([loaded.adapter])
        } catch let failure as AdapterArgument.Failure {
            throw UserFacingError(description: "--adapter: \(failure)")
        }
    }
}
