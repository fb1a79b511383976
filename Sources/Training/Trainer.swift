import Foundation
import Model

/// The training loop: epochs of seeded-shuffled micro-batches, gradient accumulation normalized
/// over the scored tokens of the whole accumulated batch, clipping, AdamW, a schedule, evaluation.
public final class Trainer {
    public let settings: TrainingSettings
    public let engine: TrainingEngine
    public var optimizer: AdamW
    let train: [TokenizedRecord]
    let eval: [TokenizedRecord]

    /// One optimizer step's report.
    public struct StepReport: Sendable, Codable, Equatable {
        public var step: Int
        public var loss: Double
        public var lr: Float
        public var grad_norm: Float
        public var tokens_per_s: Double
        public var tokens: Int
        /// Optimizer steps the run will take.
        public var total_steps: Int
    }

    public enum Event {
        case step(StepReport)
        case eval(step: Int, loss: Double)
    }

    public struct Summary: Sendable {
        public var steps: Int
        public var trainLoss: Double?
        public var evalLoss: Double?
        public var tokensPerSecond: Double
    }

    /// Records are truncated to the max sequence length here (their scored flags with them).
    public init(model: LlamaModel, adapter: LoRAAdapter, settings: TrainingSettings,
                train: [TokenizedRecord], eval: [TokenizedRecord] = []) throws {
        try settings.validate()
        guard !train.isEmpty else { throw TrainingError.data("no training records") }
        let L = settings.maxSequenceLength
        func cut(_ r: TokenizedRecord) -> TokenizedRecord {
            r.tokens.count <= L ? r : TokenizedRecord(tokens: Array(r.tokens.prefix(L)), scored: Array(r.scored.prefix(L)))
        }
        self.settings = settings
        self.train = train.map(cut)
        self.eval = eval.map(cut)
        self.engine = TrainingEngine(model: model, adapter: adapter)
        self.optimizer = AdamW(parameterCount: adapter.parameterCount, weightDecay: settings.weightDecay)
    }

    public var microBatchesPerEpoch: Int { (train.count + settings.batchSize - 1) / settings.batchSize }
    public var stepsPerEpoch: Int { max(1, (microBatchesPerEpoch + settings.gradientAccumulation - 1) / settings.gradientAccumulation) }
    public var totalSteps: Int { settings.maxSteps ?? stepsPerEpoch * settings.epochs }
    public var warmupSteps: Int { LRScheduler.warmupSteps(steps: settings.warmupSteps, ratio: settings.warmupRatio, total: totalSteps) }

    public func learningRate(step: Int) -> Float {
        settings.learningRate * settings.scheduler.factor(step: step, warmup: warmupSteps, total: totalSteps)
    }

    /// The record order of an epoch: file order, or a permutation seeded by (seed, epoch).
    public func order(epoch: Int) -> [Int] {
        var idx = Array(train.indices)
        if settings.shuffle {
            var rng = SeededGenerator(seed: settings.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
            // Fisher-Yates with our own generator, so the order is the same on every platform.
            for i in stride(from: idx.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                idx.swapAt(i, j)
            }
        }
        return idx
    }

    /// Micro-batches of one epoch, in order.
    func microBatches(epoch: Int) -> [[Int]] {
        let o = order(epoch: epoch)
        return stride(from: 0, to: o.count, by: settings.batchSize).map { Array(o[$0..<min(o.count, $0 + settings.batchSize)]) }
    }

    /// Runs to the end. `onEvent` sees every step and evaluation.
    @discardableResult
    public func run(onEvent: (Event) -> Void = { _ in }) throws -> Summary {
        let total = totalSteps
        var step = 0
        var epoch = 0
        var lastLoss: Double?
        var evalLoss: Double?
        var tokens = 0
        let start = Date()
        while step < total {
            let batches = microBatches(epoch: epoch)
            var cursor = 0
            while cursor < batches.count && step < total {
                let group = Array(batches[cursor..<min(batches.count, cursor + settings.gradientAccumulation)])
                cursor += group.count
                let report = try optimizerStep(step: step, group: group)
                tokens += report.tokens
                lastLoss = report.loss
                onEvent(.step(report))
                step += 1
                if let every = settings.evalEvery, !eval.isEmpty, step % every == 0, step < total {
                    let l = try evaluate()
                    evalLoss = l
                    onEvent(.eval(step: step, loss: l))
                }
            }
            epoch += 1
        }
        if !eval.isEmpty {
            let l = try evaluate()
            evalLoss = l
            onEvent(.eval(step: step, loss: l))
        }
        let secs = Date().timeIntervalSince(start)
        return Summary(steps: step, trainLoss: lastLoss, evalLoss: evalLoss, tokensPerSecond: secs > 0 ? Double(tokens) / secs : 0)
    }

    /// One optimizer step over a group of micro-batches (record indices).
    func optimizerStep(step: Int, group: [[Int]]) throws -> StepReport {
        let t0 = Date()
        let batches = group.map { MicroBatch.padded($0.map { train[$0] }) }
        let scored = batches.reduce(0) { $0 + $1.scoredCount }
        let scale = scored > 0 ? 1 / Float(scored) : 0
        engine.zeroGradients()
        var sum = 0.0
        var realTokens = 0
        for (i, mb) in batches.enumerated() {
            let seed = settings.seed ^ (UInt64(step) &* 0x100000001B3 &+ UInt64(i) &+ 1)
            let l = try engine.accumulate(mb, lossScale: scale, dropoutSeed: seed)
            sum += l.sum
            realTokens += mb.realTokens
        }
        let norm = GradientClipping.clip(&engine.gradients, maxNorm: settings.maxGradNorm)
        let lr = learningRate(step: step)
        optimizer.update(&engine.adapter.parameters, gradients: engine.gradients, lr: lr)
        let secs = Date().timeIntervalSince(t0)
        return StepReport(step: step + 1, loss: scored > 0 ? sum / Double(scored) : 0, lr: lr, grad_norm: norm,
                          tokens_per_s: secs > 0 ? Double(realTokens) / secs : 0, tokens: realTokens,
                          total_steps: totalSteps)
    }

    /// Mean loss over every scored token of the eval records.
    public func evaluate() throws -> Double {
        var sum = 0.0, n = 0
        for start in stride(from: 0, to: eval.count, by: settings.batchSize) {
            let mb = MicroBatch.padded(Array(eval[start..<min(eval.count, start + settings.batchSize)]))
            let l = try engine.evaluate(mb)
            sum += l.sum
            n += l.scored
        }
        return n > 0 ? sum / Double(n) : .nan
    }
}
