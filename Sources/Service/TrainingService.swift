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
        /// Save a checkpoint every N optimizer steps, keeping the newest K.
        public var checkpointEvery: Int?
        public var keepCheckpoints: Int?
        /// Continue from the newest checkpoint under `output`.
        public var resume = false
        /// Keep the adapter with the best eval loss in `output/best`.
        public var keepBest = false
        /// At each evaluation, generate for this many eval records and report exact-match accuracy.
        public var evalGenerate = 0
        /// Asked after every micro-batch; true saves a checkpoint and stops (`Trainer.Interrupted`).
        public var shouldStop: () -> Bool = { false }
        public init(data: URL, evalData: URL?, output: URL, settings: TrainingSettings, initAdapter: URL?) {
            self.data = data; self.evalData = evalData; self.output = output; self.settings = settings; self.initAdapter = initAdapter
        }
    }

    /// Events a caller sees: the trainer's, with eval accuracy added when asked for.
    public enum Event {
        case step(Trainer.StepReport)
        case eval(step: Int, loss: Double, accuracy: Double?)
        case checkpoint(URL)
        /// A step skipped under --max-bad-steps (the error says which and why).
        case skipped(step: Int, reason: String)
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
        try model.tokenize(JSONLReader.readTextRecords(url), file: url)
    }

    public func baseIdentity() -> PEFTAdapter.BaseIdentity {
        PEFTAdapter.BaseIdentity(name: model.source.lastPathComponent, sha256: try? FileDigest.modelWeightsSHA256(model.source))
    }

    public func train(_ request: Request, onEvent: (Event) -> Void) throws -> Result {
        try request.settings.validate(for: model.model.config)
        let train = try records(request.data)
        let evalRecords = try request.evalData.map { try JSONLReader.readTextRecords($0) } ?? []
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
        let base = baseIdentity()
        // Temporary directories of a save interrupted by SIGKILL are never checkpoints: remove them.
        Checkpoint.removeStaleTemporaries(request.output)
        if request.resume {
            _ = try Checkpoint.restoreNewest(trainer, output: request.output)
        }
        var best = trainer.position.bestEvalLoss
        if request.evalGenerate > 0 && trainer.position.step == 0 && !eval.isEmpty {
            // Where the run starts: the base model alone when the adapter is new (B = 0).
            onEvent(.eval(step: 0, loss: try trainer.evaluate(),
                          accuracy: exactMatch(evalRecords, limit: request.evalGenerate, adapter: adapter)))
        }
        let summary = try trainer.run(
            onEvent: { event in
                switch event {
                case let .step(r): onEvent(.step(r))
                case let .skipped(error):
                    guard case let .nonFinite(step, _, _, _) = error else { return }
                    onEvent(.skipped(step: step, reason: "\(error)"))
                case let .eval(step, loss):
                    let accuracy = request.evalGenerate > 0 ? exactMatch(evalRecords, limit: request.evalGenerate, adapter: adapter) : nil
                    if request.keepBest, best == nil || loss < best! {
                        best = loss
                        trainer.position.bestEvalLoss = loss
                        try? PEFTAdapter.save(adapter, base: base, to: request.output.appendingPathComponent("best"))
                    }
                    onEvent(.eval(step: step, loss: loss, accuracy: accuracy))
                }
            },
            shouldStop: request.shouldStop,
            onStop: { t in onEvent(.checkpoint(try Checkpoint.save(t, base: base, output: request.output, keep: request.keepCheckpoints))) },
            onStep: { t in
                if let every = request.checkpointEvery, t.position.step % every == 0, t.position.step < t.totalSteps {
                    onEvent(.checkpoint(try Checkpoint.save(t, base: base, output: request.output, keep: request.keepCheckpoints)))
                }
            })
        try PEFTAdapter.save(adapter, base: base, to: request.output)
        return Result(adapter: request.output, steps: summary.steps, trainLoss: summary.trainLoss,
                      evalLoss: summary.evalLoss, tokensPerSecond: summary.tokensPerSecond)
    }

    /// Greedy generation for the first `limit` prompt/completion records: the share whose
    /// completion (whitespace-trimmed) is generated exactly.
    public func exactMatch(_ records: [TextRecord], limit: Int, adapter: LoRAAdapter) -> Double? {
        let pairs = records.compactMap { r -> (String, String)? in
            if case let .promptCompletion(p, c) = r { return (p, c) } else { return nil }
        }.prefix(limit)
        guard !pairs.isEmpty else { return nil }
        let tok = model.tokenizer
        var hits = 0
        for (prompt, completion) in pairs {
            let want = completion.trimmingCharacters(in: .whitespacesAndNewlines)
            let budget = tok.encode(completion, addSpecialTokens: false).count + 4
            let req = GenerationRequest(prompt: tok.encode(prompt, addSpecialTokens: true), maxTokens: budget, eosTokenIds: model.eosTokenIds)
            if let r = try? model.model.generate(req, adapters: AdapterSet([adapter]), decode: { tok.decode($0) }),
               r.text.trimmingCharacters(in: .whitespacesAndNewlines) == want { hits += 1 }
        }
        return Double(hits) / Double(pairs.count)
    }

    /// Loads a PEFT adapter directory for inference, warning (through `warn`) when it was
    /// trained on a different base.
    /// A `.gguf` file is read as a llama.cpp LoRA adapter (`GGUFAdapter`), q/k permutation undone.
    /// Either way with its fp16 copies for decode rows (`LoRAAdapter.prepareHalfRows`), as the serving
    /// cache's loader: generate, chat and serve decode with the same values.
    public static func loadAdapter(_ dir: URL, for model: LanguageModel, warn: (String) -> Void) throws -> LoRAAdapter {
        let adapter = try readAdapter(dir, for: model, warn: warn)
        adapter.prepareHalfRows()
        return adapter
    }

    /// `loadAdapter` without the fp16 copies (for a reader of the fp32 parameters alone: merging).
    static func readAdapter(_ dir: URL, for model: LanguageModel, warn: (String) -> Void) throws -> LoRAAdapter {
        var isDir: ObjCBool = false
        if dir.pathExtension.lowercased() == "gguf", FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), !isDir.boolValue {
            var arch = model.model.config.ggufArchitecture
            if model.source.pathExtension.lowercased() == "gguf", let a = try? GGUFFile(model.source).metadata["general.architecture"]?.string {
                arch = a
            }
            return try GGUFAdapter.read(dir, base: model.model.config, architecture: arch)
        }
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
