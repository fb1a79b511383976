import Foundation
import Model
import Tokenizer

/// Generation and scoring use cases: what `lora generate` / `lora score` (and later the HTTP
/// server) call.
public struct InferenceService {
    public let model: LanguageModel

    public init(model: LanguageModel) { self.model = model }

    public struct GenerateOptions: Sendable {
        public var maxTokens: Int = 256
        public var sampling = SamplingParameters.greedy
        public var stop: [String] = []
        public init() {}
    }

    /// Generates a completion of `prompt` (encoded with the tokenizer's own special tokens).
    public func generate(prompt: String, options: GenerateOptions, adapters: AdapterSet = .none,
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        let ids = model.tokenizer.encode(prompt, addSpecialTokens: true)
        let request = GenerationRequest(prompt: ids, maxTokens: options.maxTokens, sampling: options.sampling,
                                        stopStrings: options.stop, eosTokenIds: model.eosTokenIds)
        let tok = model.tokenizer
        return try model.model.generate(request, adapters: adapters, decode: { tok.decode($0, skipSpecialTokens: false) },
                                        onText: onText)
    }

    public struct RecordScore: Sendable, Codable, Equatable {
        /// Mean NLL over this record's scored tokens, in nats.
        public var nll: Double
        public var tokens: Int
    }

    public struct ScoreReport: Sendable, Codable, Equatable {
        /// Mean NLL over all scored tokens of all records.
        public var mean_nll: Double
        public var tokens: Int
        public var records: [RecordScore]
    }

    /// Scores every record of a JSONL file (see `TextRecord`).
    public func score(file: URL, adapters: AdapterSet = .none) throws -> ScoreReport {
        let records = try JSONLReader.readTextRecords(file)
        let eos = records.contains { if case .promptCompletion = $0 { return true } else { return false } }
            ? try model.scoringEOS() : 0
        let maxLen = model.model.config.maxPositionEmbeddings
        var results: [RecordScore] = []
        var sum = 0.0, count = 0
        for (i, r) in records.enumerated() {
            let tr = r.tokenize(with: model.tokenizer, eosTokenId: eos)
            if maxLen > 0 && tr.tokens.count > maxLen {
                throw ModelError.invalidArgument("\(file.path): record \(i + 1) has \(tr.tokens.count) tokens, more than the model's context of \(maxLen)")
            }
            let nll = try model.model.negativeLogLikelihood(tr, adapters: adapters)
            results.append(RecordScore(nll: nll.mean, tokens: nll.count))
            sum += nll.sum
            count += nll.count
        }
        return ScoreReport(mean_nll: count == 0 ? .nan : sum / Double(count), tokens: count, records: results)
    }
}
