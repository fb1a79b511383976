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

    @Option(name: .long, help: "Maximum new tokens.")
    var maxTokens: Int = 256

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Nucleus sampling: keep the smallest set of tokens whose probability reaches P.")
    var topP: Float?

    @Option(name: .long, help: "Keep only the K most likely tokens.")
    var topK: Int?

    @Option(name: .long, help: "Random seed for sampling.")
    var seed: UInt64?

    @Option(name: .long, help: "Stop when the completion contains this string (repeatable).")
    var stop: [String] = []

    @Flag(name: .long, help: "Print {\"text\", \"tokens\", \"finish_reason\"} as JSON.")
    var json = false

    @Argument(help: "The prompt.")
    var prompt: String

    func validate() throws {
        if maxTokens < 0 { throw ValidationError("--max-tokens must be >= 0, got \(maxTokens)") }
        try SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed).validate()
    }

    func run() throws {
        let lm = try modelOptions.load()
        let adapters = try adapterOptions.adapters(for: lm)
        var options = InferenceService.GenerateOptions()
        options.maxTokens = maxTokens
        options.sampling = SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed)
        options.stop = stop
        let service = InferenceService(model: lm)
        if json {
            let result = try service.generate(prompt: prompt, options: options, adapters: adapters)
            struct Out: Encodable { let text: String; let tokens: [Int]; let finish_reason: String }
            try printJSON(Out(text: result.text, tokens: result.tokens, finish_reason: result.finishReason.rawValue))
        } else {
            _ = try service.generate(prompt: prompt, options: options, adapters: adapters) { piece in
                FileHandle.standardOutput.write(Data(piece.utf8))
            }
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}
