import ArgumentParser
import Model

/// What differs between the commands that share `SamplingOptions`: the default and least value of `--max-tokens`.
protocol SamplingDefaults {
    static var maxTokens: Int { get }
    static var minimumMaxTokens: Int { get }
}

/// `lora generate`: up to 256 new tokens; 0 is allowed (the prompt alone).
enum GenerateSamplingDefaults: SamplingDefaults {
    static let maxTokens = 256
    static let minimumMaxTokens = 0
}

/// `lora chat`: up to 512 new tokens per reply, at least one.
enum ChatSamplingDefaults: SamplingDefaults {
    static let maxTokens = 512
    static let minimumMaxTokens = 1
}

/// `--max-tokens`, `--temperature`, `--top-p`, `--top-k` and `--seed`, as `lora generate` and `lora chat` take them.
struct SamplingOptions<Defaults: SamplingDefaults>: ParsableArguments {
    @Option(name: .long, help: "Maximum new tokens.")
    var maxTokens: Int = Defaults.maxTokens

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Nucleus sampling: keep the smallest set of tokens whose probability reaches P.")
    var topP: Float?

    @Option(name: .long, help: "Keep only the K most likely tokens.")
    var topK: Int?

    @Option(name: .long, help: "Random seed for sampling.")
    var seed: UInt64?

    var parameters: SamplingParameters { SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed) }

    func validate() throws {
        if maxTokens < Defaults.minimumMaxTokens {
            throw ValidationError("--max-tokens must be >= \(Defaults.minimumMaxTokens), got \(maxTokens)")
        }
        try parameters.validate()
    }
}
