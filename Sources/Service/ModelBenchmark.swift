import Foundation
import Kernels
import Model
import Training

/// The speed figures of issue 15 (`lora bench`), measured on a loaded model with the code paths users
/// run: training steps (forward, backward, AdamW) of a LoRA adapter, prompt prefill in the chunks
/// `generate` uses, greedy one-token decoding from the KV cache, and the decode GEMVs alone.
///
/// Each figure runs `warmups` untimed repetitions, then `repetitions` timed ones, and reports their
/// median. Inputs are deterministic token ids (`tokenIds`), the same ones `scripts/bench/peers.py`
/// feeds the peers, so both sides do the same work. Timings vary with machine load: only ratios to
/// a peer measured in the same run mean anything.
public struct ModelBenchmark {
    public enum Kind: String, CaseIterable, Sendable, Codable {
        case train, prefill, decode, gemv, bounds
    }

    /// The shapes of the figures (issue 15's: training batch 4 x 256, rank 16 on every linear layer,
    /// dropout 0; a 250-token prefill; 128 greedy tokens after a 16-token prompt).
    public struct Shape: Sendable, Codable, Equatable {
        public var batch = 4
        public var sequenceLength = 256
        public var rank = 16
        public var alpha: Float = 32
        public var promptTokens = 250
        /// Prompt tokens per prefill forward call (`generate`'s chunk unless set).
        public var prefillChunk = LlamaModel.defaultPrefillChunk
        public var decodePromptTokens = 16
        public var newTokens = 128
        public init() {}
    }

    /// One figure: the median of the timed repetitions and each repetition's value.
    public struct Figure: Sendable, Codable, Equatable {
        /// e.g. "train_tokens_per_s", "gemv_q_proj_us".
        public var name: String
        public var unit: String
        public var median: Double
        public var samples: [Double]
        /// What bounds the figure on this machine: the flops per token of its frozen-weight products
        /// (train, prefill: sgemm-bound) or the weight bytes read per token (decode: memory-bound).
        public var boundFlopsPerToken: Double?
        public var boundBytesPerToken: Double?
    }

    /// `measure` of every linear layer of every decoder layer (the LM head apart), summed.
    private func sumOverLinearLayers(_ measure: (LinearWeight) -> Int) -> Int {
        model.weights.layers.reduce(0) { sum, layer in
            LayerWeights.linearNames.reduce(sum) { sum, name in sum + (layer.linear(name).map(measure) ?? 0) }
        }
    }

    /// Multiply-adds of one token through every linear layer (the LM head apart), and of the LM head.
    var linearParameters: (layers: Double, head: Double) {
        let head = model.weights.lmHead
        return (Double(sumOverLinearLayers { $0.outFeatures * $0.inFeatures }), Double(head.outFeatures * head.inFeatures))
    }

    /// Bytes of frozen weights one decoded token reads: every linear layer and the LM head as held.
    var weightBytesPerToken: Double {
        Double(sumOverLinearLayers { $0.residentBytes } + model.weights.lmHead.residentBytes)
    }

    public let model: LlamaModel
    public var shape: Shape
    public var warmups: Int
    public var repetitions: Int

    public init(model: LlamaModel, shape: Shape = Shape(), warmups: Int = 1, repetitions: Int = 3) {
        self.model = model; self.shape = shape; self.warmups = warmups; self.repetitions = repetitions
    }

    /// Deterministic token ids in 1..<V (a fixed stride through the vocabulary): speed does not depend
    /// on which ids they are, and a peer can compute the same list (`peers.py`, `token_ids`).
    public static func tokenIds(_ count: Int, vocabulary v: Int, offset: Int = 0) -> [Int] {
        (0..<count).map { 1 + ((($0 + offset) * 7919) % max(1, v - 1)) }
    }

    /// Runs `body` warm-up times untimed, then `repetitions` timed; `body` returns the work done
    /// (tokens) and the figure is work per second, or seconds per call with `perCall`.
    func measure(_ name: String, unit: String, _ body: () throws -> (work: Double, seconds: Double)) rethrows -> Figure {
        for _ in 0..<warmups { _ = try body() }
        var samples: [Double] = []
        for _ in 0..<max(1, repetitions) {
            let (work, secs) = try body()
            samples.append(secs > 0 ? work / secs : 0)
        }
        let sorted = samples.sorted()
        let mid = sorted.count / 2
        let median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        return Figure(name: name, unit: unit, median: median, samples: samples)
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    public func run(_ kind: Kind) throws -> [Figure] {
        switch kind {
        case .train:
            // Forward and the input-gradient backward through every frozen product, LM head included.
            var f = try train()
            f.boundFlopsPerToken = 4 * (linearParameters.layers + linearParameters.head)
            return [f]
        case .prefill:
            var f = try prefill()
            f.boundFlopsPerToken = 2 * linearParameters.layers
            return [f]
        case .decode:
            var f = try decode()
            f.boundBytesPerToken = weightBytesPerToken
            return [f]
        case .gemv: return gemv()
        case .bounds: return bounds()
        }
    }

    /// Training tokens/s: one optimizer step per repetition over a [batch, sequenceLength] micro-batch
    /// of real (unpadded) tokens, every position scored, LoRA rank `shape.rank` on every linear layer,
    /// dropout 0: forward, loss, backward, gradient clipping and the AdamW update, as `Trainer` runs them.
    public func train() throws -> Figure {
        let c = model.config
        let B = shape.batch, T = shape.sequenceLength
        let records = (0..<B).map { b in
            let ids = Self.tokenIds(T, vocabulary: c.vocabSize, offset: b * T)
            return TokenizedRecord(tokens: ids, scored: ids.indices.map { $0 > 0 })
        }
        let batch = MicroBatch.padded(records)
        let adapter = LoRAAdapter(config: LoRAConfig(rank: shape.rank, alpha: shape.alpha, dropout: 0), base: c)
        adapter.initialize(seed: 1)
        let engine = TrainingEngine(model: model, adapter: adapter)
        var optimizer = AdamW(parameterCount: adapter.parameters.count)
        let scale = 1 / Float(max(1, batch.scoredCount))
        return try measure("train_tokens_per_s", unit: "tokens/s") {
            let secs = try Self.seconds {
                engine.zeroGradients()
                try engine.accumulate(batch, lossScale: scale, dropoutSeed: 0)
                _ = GradientClipping.clip(&engine.gradients, maxNorm: 1)
                optimizer.update(&engine.adapter.parameters, gradients: engine.gradients, lr: 2e-4)
            }
            return (Double(batch.realTokens), secs)
        }
    }

    /// Prefill tokens/s: a `promptTokens` prompt into a fresh KV cache in `generate`'s chunks, then the
    /// last position's logits (what the first sampled token needs).
    public func prefill() throws -> Figure {
        let c = model.config
        let prompt = Self.tokenIds(shape.promptTokens, vocabulary: c.vocabSize)
        let chunk = shape.prefillChunk
        let ws = Workspace()
        var hidden = [Float](repeating: 0, count: chunk * c.hiddenSize)
        var logits = [Float](repeating: 0, count: c.vocabSize)
        return try measure("prefill_tokens_per_s", unit: "tokens/s") {
            let cache = KVCache(config: c, capacity: prompt.count)
            let secs = try Self.seconds {
                try hidden.withUnsafeMutableBufferPointer { h in
                    var start = 0
                    while start < prompt.count {
                        let part = Array(prompt[start..<min(prompt.count, start + chunk)])
                        try model.forward(part, cache: cache, adapters: .none, workspace: ws, hidden: h.baseAddress!)
                        start += part.count
                        if start == prompt.count {
                            logits.withUnsafeMutableBufferPointer { o in
                                model.logits(hidden: h.baseAddress! + (part.count - 1) * c.hiddenSize, tokens: 1, into: o.baseAddress!)
                            }
                        }
                    }
                }
            }
            return (Double(prompt.count), secs)
        }
    }

    /// Decode tokens/s, batch 1: after a `decodePromptTokens` prompt (untimed), `newTokens` greedy
    /// steps of one token each (forward from the KV cache, logits, argmax), end of sequence ignored.
    public func decode() throws -> Figure {
        let run = DecodeRun(model: model, promptTokens: shape.decodePromptTokens)
        defer { run.free() }
        return try measure("decode_tokens_per_s", unit: "tokens/s") {
            let secs = try run.run(newTokens: shape.newTokens)
            return (Double(shape.newTokens), secs)
        }
    }

    /// Batch-1 greedy decoding as `decode()` times it, its buffers kept across runs: each run starts
    /// a fresh KV cache, feeds the prompt, then times `newTokens` one-token steps (forward, logits, argmax).
    final class DecodeRun {
        let model: LlamaModel
        let prompt: [Int]
        let ws = Workspace()
        var hidden: FloatBuffer
        var logits: FloatBuffer
        var sampler = Sampler(.greedy)

        init(model: LlamaModel, promptTokens: Int) {
            let c = model.config
            self.model = model
            prompt = ModelBenchmark.tokenIds(promptTokens, vocabulary: c.vocabSize)
            hidden = FloatBuffer(count: prompt.count * c.hiddenSize)
            logits = FloatBuffer(count: c.vocabSize)
        }

        func free() { hidden.free(); logits.free() }

        /// Seconds of the `newTokens` steps (the prompt untimed).
        func run(newTokens: Int) throws -> Double {
            let c = model.config
            let cache = KVCache(config: c, capacity: prompt.count + newTokens)
            var next = [0]
            try model.forward(prompt, cache: cache, adapters: .none, workspace: ws, hidden: hidden.pointer)
            model.logits(hidden: hidden.pointer + (prompt.count - 1) * c.hiddenSize, tokens: 1, into: logits.pointer)
            next[0] = sampler.sample(logits.pointer, count: c.vocabSize)
            return try ModelBenchmark.seconds {
                for _ in 0..<newTokens {
                    try model.forward(next, cache: cache, adapters: .none, workspace: ws, hidden: hidden.pointer)
                    model.logits(hidden: hidden.pointer, tokens: 1, into: logits.pointer)
                    next[0] = sampler.sample(logits.pointer, count: c.vocabSize)
                }
            }
        }
    }

    /// Microseconds per one-row product (decode's GEMV) of layer 0's q_proj, gate_proj, down_proj and
    /// the LM head, with the model's own weights (the figures the old gemv benchmark printed).
    public func gemv() -> [Figure] {
        let l0 = model.weights.layers[0]
        let weights: [(String, LinearWeight)] = [("q_proj", l0.q), ("gate_proj", l0.gate), ("down_proj", l0.down),
                                                 ("lm_head", model.weights.lmHead)]
        return weights.map { name, w in
            let x = (0..<w.inFeatures).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
            var y = [Float](repeating: 0, count: w.outFeatures)
            let calls = max(4, 20_000_000 / (w.outFeatures * w.inFeatures))
            var f = measure("gemv_\(name)_calls_per_s", unit: "calls/s") {
                let secs = x.withUnsafeBufferPointer { xb in
                    y.withUnsafeMutableBufferPointer { yb in
                        Self.seconds { for _ in 0..<calls { w.forwardRows(xb.baseAddress!, rows: 1, into: yb.baseAddress!, accumulate: false) } }
                    }
                }
                return (Double(calls), secs)
            }
            // Reported as microseconds per call (the median call rate inverted, samples likewise).
            f.name = "gemv_\(name)_\(w.outFeatures)x\(w.inFeatures)_us"
            f.unit = "us"
            f.median = f.median > 0 ? 1e6 / f.median : 0
            f.samples = f.samples.map { $0 > 0 ? 1e6 / $0 : 0 }
            return f
        }
    }
}
