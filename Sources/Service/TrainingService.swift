import Foundation
import Model
import Tokenizer
import Training

/// `lora train`'s use case: read and validate data, build or load the adapter, run the loop,
/// save the adapter in PEFT's format.
public struct TrainingService {
    public let model: LanguageModel

    public init(model: LanguageModel) { self.model = model }

    public struct Request {
        public var data: URL
        public var evalData: URL?
        public var output: URL
        public var settings: TrainingSettings
        public var initAdapter: URL?
        public init(data: URL, evalData: URL?, output: URL, settings: TrainingSettings, initAdapter: URL?) {
            self.data = data; self.evalData = evalData; self.output = output; self.settings = settings; self.initAdapter = initAdapter
        }
    }

    public struct Result: Sendable {
        public var adapter: URL
        public var steps: Int
        public var trainLoss: Double?
        public var evalLoss: Double?
        public var tokensPerSecond: Double
    }

    /// Tokenizes every record of a file (the whole file is validated before training starts).
    public func records(_ url: URL) throws -> [TokenizedRecord] {
        let recs = try JSONLReader.readTextRecords(url)
        let needsEOS = recs.contains { if case .promptCompletion = $0 { return true } else { return false } }
        let eos = needsEOS ? try model.scoringEOS() : 0
        return recs.map { $0.tokenize(with: model.tokenizer, eosTokenId: eos) }
    }

    public func baseIdentity() -> PEFTAdapter.BaseIdentity {
        PEFTAdapter.BaseIdentity(name: model.source.lastPathComponent, sha256: try? FileDigest.modelWeightsSHA256(model.source))
    }

    public func train(_ request: Request, onEvent: (Trainer.Event) -> Void) throws -> Result {
        try request.settings.validate()
        let train = try records(request.data)
        let eval = try request.evalData.map(records) ?? []
        let config = model.model.config
        let adapter: LoRAAdapter
        if let dir = request.initAdapter {
            let loaded = try PEFTAdapter.load(from: dir, base: config)
            // The initial adapter's shape wins; dropout comes from the run's settings.
            var c = loaded.adapter.config
            c.dropout = request.settings.lora.dropout
            adapter = LoRAAdapter(config: c, base: config)
            adapter.parameters = loaded.adapter.parameters
        } else {
            adapter = LoRAAdapter(config: request.settings.lora, base: config)
            adapter.initialize(seed: request.settings.seed)
        }
        var settings = request.settings
        settings.lora = adapter.config
        let trainer = try Trainer(model: model.model, adapter: adapter, settings: settings, train: train, eval: eval)
        let summary = try trainer.run(onEvent: onEvent)
        try PEFTAdapter.save(adapter, base: baseIdentity(), to: request.output)
        return Result(adapter: request.output, steps: summary.steps, trainLoss: summary.trainLoss,
                      evalLoss: summary.evalLoss, tokensPerSecond: summary.tokensPerSecond)
    }

    /// Loads a PEFT adapter directory for inference, warning (through `warn`) when it was
    /// trained on a different base.
    public static func loadAdapter(_ dir: URL, for model: LanguageModel, warn: (String) -> Void) throws -> LoRAAdapter {
        let loaded = try PEFTAdapter.load(from: dir, base: model.model.config)
        if let base = loaded.base {
            let ours = model.source.lastPathComponent
            if let sha = base.sha256, let mine = try? FileDigest.modelWeightsSHA256(model.source), sha != mine {
                warn("warning: adapter \(dir.path) was trained on base '\(base.name)' (sha256 \(sha.prefix(12))…), not on \(ours) (sha256 \(mine.prefix(12))…)")
            } else if base.sha256 == nil && base.name != ours && !base.name.isEmpty {
                warn("warning: adapter \(dir.path) names base '\(base.name)', this model is \(ours)")
            }
        }
        return loaded.adapter
    }
}
