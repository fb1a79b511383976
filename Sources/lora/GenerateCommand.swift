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

    @Option(name: .long, help: "Prompt-lookup speculation: draft up to K tokens per step from an n-gram match in the prompt and output, verified in one forward (0: off). Same output tokens.")
    var speculate: Int = 0

    @Option(name: .customLong("lookup-ngram"), help: "With --speculate: the longest suffix n-gram looked up (shorter ones down to 1 are tried).")
    var lookupNgram: Int = PromptLookup.defaultNgram

    @Option(name: .customLong("lookup-min-ngram"), help: "With --speculate: the shortest suffix n-gram a draft may come from (default \(PromptLookup.defaultMinNgram), at most --lookup-ngram).")
    var lookupMinNgram: Int?

    @Flag(name: .long, help: "Print {\"text\", \"tokens\", \"finish_reason\"} as JSON (with --speculate also \"drafted\", \"accepted\", \"steps\").")
    var json = false

    @Flag(name: .long, help: "Send PROMPT as one user message through the model's chat template, with the generation prompt.")
    var chat = false

    @Option(name: .long, help: "With --chat: a system message before the user message.")
    var system: String?

    @Argument(help: "The prompt.")
    var prompt: String

    func validate() throws {
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
        do { _ = try PromptLookup.make(draftTokens: speculate, ngram: lookupNgram, minNgram: lookupMinNgram) } catch let e as SpeculationError {
            switch e {
            case .draftTokensOutOfRange(let k): throw ValidationError("--speculate must be in 0...\(PromptLookup.maxDraftTokens), got \(k)")
            case .ngramOutOfRange(let n): throw ValidationError("--lookup-ngram must be in 1...\(PromptLookup.maxNgram), got \(n)")
            case let .minNgramOutOfRange(m, ngram): throw ValidationError("--lookup-min-ngram must be in 1...\(ngram) (--lookup-ngram), got \(m)")
            }
        }
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
        options.speculation = try PromptLookup.make(draftTokens: speculate, ngram: lookupNgram, minNgram: lookupMinNgram)
        let service = InferenceService(model: lm)
        let messages = chat ? InferenceService.chatMessages(prompt: prompt, system: system) : nil
        let generate = { (onText: ((String) -> Void)?) throws -> GenerationResult in
            if let messages { return try service.generate(chat: messages, options: options, adapters: adapters, onText: onText) }
            return try service.generate(prompt: prompt, options: options, adapters: adapters, onText: onText)
        }
        if json {
            let result = try generate(nil)
            struct Speculation: Encodable { let drafted: Int; let accepted: Int; let steps: Int }
            struct Out: Encodable { let text: String; let tokens: [Int]; let finish_reason: String; let speculation: Speculation? }
            let spec = options.speculation == nil ? nil
                : Speculation(drafted: result.draftedTokens, accepted: result.acceptedTokens, steps: result.decodeSteps)
            try printJSON(Out(text: result.text, tokens: result.tokens, finish_reason: result.finishReason.rawValue, speculation: spec))
        } else {
            _ = try generate { piece in FileHandle.standardOutput.write(Data(piece.utf8)) }
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}
