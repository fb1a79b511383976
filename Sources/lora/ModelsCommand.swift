import ArgumentParser
import Foundation
import Registry
import Service

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "Register and list base models.",
        subcommands: [ModelsAdd.self, ModelsList.self])
}

struct ModelsAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Register a base model file or directory by name.")
    @Argument(help: "Name to register it under.") var name: String
    @Argument(help: "A GGUF file, an HF model directory, or a URL of either (fetched, verified and cached).") var source: String
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        let b = try registry.open().addBaseModel(name: name, spec: source)
        try registry.emit(b) { "registered base model \(b.name) (\(b.architecture), \(b.quantization)) sha256 \(b.sha256)" }
    }
}

struct ModelsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List registered base models.")
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        let all = try registry.open().baseModels()
        try registry.emit(ListEnvelope(all)) {
            table(["NAME", "ARCHITECTURE", "QUANTIZATION", "SHA256", "SOURCE"],
                  all.map { [$0.name, $0.architecture, $0.quantization, $0.sha256, $0.source] })
        }
    }
}
