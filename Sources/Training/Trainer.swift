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
        /// An optimizer step (1-based) skipped under --max-bad-steps: its loss or gradient norm was
        /// not finite; its batches were consumed and no update was applied.
        case skipped(TrainingError)
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
        self.engine = TrainingEngine(model: model, adapter: adapter, gradientCheckpointing: settings.gradientCheckpointing)
        self.optimizer = AdamW(parameterCount: adapter.parameterCount, weightDecay: settings.weightDecay)
    }

    /// A fingerprint of the training data (record tokens and scored flags), FNV-1a 64.
    public var dataFingerprint: String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ v: UInt64) { h = (h ^ v) &* 0x100_0000_01B3 }
        for r in train {
            mix(UInt64(r.tokens.count))
            for (t, s) in zip(r.tokens, r.scored) { mix(UInt64(t) << 1 | (s ? 1 : 0)) }
        }
        return String(h, radix: 16)
    }

    public var microBatchesPerEpoch: Int { microBatches(epoch: 0).count }
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

    /// Micro-batches of one epoch, in order: each a list of rows, each row a list of record
    /// indices (one record per row unless packing).
    func microBatches(epoch: Int) -> [[[Int]]] {
        let o = order(epoch: epoch)
        let rows: [[Int]]
        if settings.packing {
            // First fit in epoch order: a row takes records while they fit in the max length.
            var packed: [[Int]] = []
            var current: [Int] = []
            var used = 0
            for i in o {
                let n = train[i].tokens.count
                if used + n > settings.maxSequenceLength && !current.isEmpty {
                    packed.append(current); current = []; used = 0
                }
                current.append(i); used += n
            }
            if !current.isEmpty { packed.append(current) }
            rows = packed
        } else {
            rows = o.map { [$0] }
        }
        return stride(from: 0, to: rows.count, by: settings.batchSize).map { Array(rows[$0..<min(rows.count, $0 + settings.batchSize)]) }
    }

    func makeBatch(_ rows: [[Int]]) -> MicroBatch {
        if settings.packing {
            return MicroBatch.packed(rows.map { $0.map { train[$0] } }, length: rows.map { $0.reduce(0) { $0 + train[$1].tokens.count } }.max() ?? 1)
        }
        return MicroBatch.padded(rows.map { train[$0[0]] })
    }

    /// Where a run stands: enough to continue it exactly (with the adapter and optimizer).
    public struct Position: Codable, Sendable, Equatable {
        public var step = 0
        public var epoch = 0
        /// Index of the next micro-batch within the epoch.
        public var cursor = 0
        /// Micro-batches of the current accumulation group already accumulated into the gradients.
        public var microDone = 0
        /// Loss sum and real tokens of those micro-batches.
        public var partialLossSum = 0.0
        public var partialTokens = 0
        public var tokens = 0
        /// Steps skipped so far for a non-finite loss or gradient norm (nil: none; optional so
        /// checkpoints written before it existed still decode).
        public var badSteps: Int?
        public var lastLoss: Double?
        public var evalLoss: Double?
        public var bestEvalLoss: Double?
        public init() {}
    }

    public var position = Position()

    /// Thrown (after a checkpoint is written by `onStop`) when `shouldStop` asks the run to end early.
    public struct Interrupted: Error, CustomStringConvertible {
        public var position: Position
        public var description: String { "training interrupted at step \(position.step) (micro-batch \(position.microDone) of its accumulation)" }
    }

    /// Runs to the end from `position`. `onEvent` sees every step and evaluation; `shouldStop` is
    /// asked after every micro-batch and, when true, `onStop` saves a checkpoint and the run
    /// throws `Interrupted`; `onStep` runs after each optimizer step (periodic checkpoints).
    @discardableResult
    public func run(onEvent: (Event) -> Void = { _ in },
                    shouldStop: () -> Bool = { false },
                    onStop: (Trainer) throws -> Void = { _ in },
                    onStep: (Trainer) throws -> Void = { _ in }) throws -> Summary {
        let total = totalSteps
        let start = Date()
        var tokensThisRun = 0
        while position.step < total {
            let batches = microBatches(epoch: position.epoch)
            while position.cursor < batches.count && position.step < total {
                let group = Array(batches[position.cursor..<min(batches.count, position.cursor + settings.gradientAccumulation)])
                let built = group.map(makeBatch)
                let scored = built.reduce(0) { $0 + $1.scoredCount }
                let scale = scored > 0 ? 1 / Float(scored) : 0
                let t0 = Date()
                if position.microDone == 0 { engine.zeroGradients(); position.partialLossSum = 0; position.partialTokens = 0 }
                var bad: TrainingError?
                while position.microDone < built.count {
                    let i = position.microDone
                    let seed = settings.seed ^ (UInt64(position.step) &* 0x100000001B3 &+ UInt64(i) &+ 1)
                    let l = try engine.accumulate(built[i], lossScale: scale, dropoutSeed: seed)
                    if !l.sum.isFinite {
                        bad = TrainingError.nonFinite(step: position.step + 1, microBatch: i + 1, quantity: "loss", value: l.sum)
                        break
                    }
                    position.partialLossSum += l.sum
                    position.partialTokens += built[i].realTokens
                    position.microDone += 1
                    if position.microDone < built.count && shouldStop() {
                        try onStop(self)
                        throw Interrupted(position: position)
                    }
                }
                let norm = bad == nil ? GradientClipping.clip(&engine.gradients, maxNorm: settings.maxGradNorm) : .nan
                // Checked before the optimizer: a non-finite gradient would turn every adapter weight into NaN.
                if bad == nil && !norm.isFinite {
                    bad = TrainingError.nonFinite(step: position.step + 1, microBatch: nil, quantity: "gradient norm", value: Double(norm))
                }
                if let bad {
                    // Skipped while the budget lasts: the step's batches are consumed, its gradients dropped,
                    // nothing applied; the step still counts, so the schedule and the step total stay as planned.
                    let skipped = (position.badSteps ?? 0) + 1
                    guard skipped <= (settings.maxBadSteps ?? 0) else { throw bad }
                    position.badSteps = skipped
                    engine.zeroGradients()
                    position.step += 1
                    position.cursor += group.count
                    position.microDone = 0
                    position.partialLossSum = 0
                    position.partialTokens = 0
                    onEvent(.skipped(bad))
                    try onStep(self)
                    continue
                }
                let lr = learningRate(step: position.step)
                optimizer.update(&engine.adapter.parameters, gradients: engine.gradients, lr: lr)
                let secs = Date().timeIntervalSince(t0)
                let report = StepReport(step: position.step + 1, loss: scored > 0 ? position.partialLossSum / Double(scored) : 0,
                                        lr: lr, grad_norm: norm, tokens_per_s: secs > 0 ? Double(position.partialTokens) / secs : 0,
                                        tokens: position.partialTokens, total_steps: total)
                position.step += 1
                position.cursor += group.count
                position.microDone = 0
                position.tokens += report.tokens
                tokensThisRun += report.tokens
                position.lastLoss = report.loss
                onEvent(.step(report))
                if let every = settings.evalEvery, !eval.isEmpty, position.step % every == 0, position.step < total {
                    let l = try evaluate()
                    position.evalLoss = l
                    onEvent(.eval(step: position.step, loss: l))
                }
                try onStep(self)
                if position.step < total && shouldStop() {
                    try onStop(self)
                    throw Interrupted(position: position)
                }
            }
            if position.cursor >= batches.count { position.epoch += 1; position.cursor = 0 }
        }
        if !eval.isEmpty {
            let l = try evaluate()
            position.evalLoss = l
            onEvent(.eval(step: position.step, loss: l))
        }
        let secs = Date().timeIntervalSince(start)
        return Summary(steps: position.step, trainLoss: position.lastLoss, evalLoss: position.evalLoss,
                       tokensPerSecond: secs > 0 ? Double(tokensThisRun) / secs : 0)
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
