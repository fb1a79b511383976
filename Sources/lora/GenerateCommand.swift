import ArgumentParser
import Foundation
import Model
import Service

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with the base model; prints only the completion.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOptions: AdapterOptions

    @OptionGroup var sampling: SamplingOptions<GenerateSamplingDefaults>

    @Option(name: .long, help: "Stop when the completion contains this string (repeatable).")
    var stop: [String] = []

    @Flag(name: .long, help: "Print {\"text\", \"tokens\", \"finish_reason\"} as JSON.")
    var json = false

    @Flag(name: .long, help: "Send PROMPT as one user message through the model's chat template, with the generation prompt.")
    var chat = false

    @Option(name: .long, help: "With --chat: a system message before the user message.")
    var system: String?

    @Argument(help: "The prompt.")
    var prompt: String

    func validate() throws {
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
    }

    func run() throws {
        let lm = try modelOptions.load()
        // A chat template that does not parse fails here, before any adapter is loaded.
        if chat { _ = try InferenceService(model: lm).chatTemplate() }
        let adapters = try adapterOptions.adapters(for: lm)
        var options = InferenceService.GenerateOptions()
        options.maxTokens = sampling.maxTokens
        options.sampling = sampling.parameters
        options.stop = stop
        let service = InferenceService(model: lm)
        let messages = chat ? InferenceService.chatMessages(prompt: prompt, system: system) : nil
        let generate = { (onText: ((String) -> Void)?) throws -> GenerationResult in
            if let messages { return try service.generate(chat: messages, options: options, adapters: adapters, onText: onText) }
            return try service.generate(prompt: prompt, options: options, adapters: adapters, onText: onText)
        }
        if json {
            let result = try generate(nil)
            struct Out: Encodable { let text: String; let tokens: [Int]; let finish_reason: String }
            try printJSON(Out(text: result.text, tokens: result.tokens, finish_reason: result.finishReason.rawValue))
        } else {
            _ = try generate { piece in FileHandle.standardOutput.write(Data(piece.utf8)) }
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}
