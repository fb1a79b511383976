import Foundation
import Kernels
import Model

/// One adapted linear layer: A [R, K] and B [N, R] live in the adapter's flat parameter buffer
/// at `aOffset` / `bOffset`. y += scaling * B · A · x.
public struct LoRAPair: Sendable, Equatable {
    public let layer: Int
    public let module: LinearModule
    public let rank: Int          // R
    public let inFeatures: Int    // K
    public let outFeatures: Int   // N
    public let scaling: Float
    public let aOffset: Int
    public let bOffset: Int

    public var aCount: Int { rank * inFeatures }
    public var bCount: Int { outFeatures * rank }
}

/// A LoRA adapter over a Llama-family base: every A and B in one flat fp32 buffer (so the
/// optimizer, gradient clipping and checkpoints see a single vector), indexed by `pairs`.
///
/// As a `LinearDelta` it is what the inference forward pass applies; the training forward and
/// backward read the same buffer.
public final class LoRAAdapter: LinearDelta, @unchecked Sendable {
    public let config: LoRAConfig
    public let pairs: [LoRAPair]
    /// All parameters: for each pair, A then B.
    public var parameters: [Float]
    /// pairIndex[layer * 7 + module index] -> index into `pairs`, or -1.
    let pairIndex: [Int]
    /// Per pair, fp16 copies of A and B for decode rows (`prepareHalfRows`); nil for a matrix that
    /// keeps the fp32 path. Empty unless prepared: training's adapters, whose parameters change, never are.
    public private(set) var halfRows: [(a: HalfMatrix?, b: HalfMatrix?)] = []
    /// The bytes of the one buffer the copies live in (0 unless prepared).
    private var halfBytes = 0

    public static let moduleOrder = LinearModule.allCases

    /// A zero-initialised adapter shaped for `base` (B zeros, A zeros: call `initialize(seed:)`
    /// for PEFT's initialisation, or load values).
    public init(config: LoRAConfig, base: LlamaConfig) {
        self.config = config
        var pairs: [LoRAPair] = []
        var index = [Int](repeating: -1, count: base.numLayers * Self.moduleOrder.count)
        var offset = 0
        for l in 0..<base.numLayers {
            for (mi, m) in Self.moduleOrder.enumerated() where config.targets.contains(m) {
                let (n, k) = Self.shape(of: m, base)
                let r = config.rank(layer: l, module: m) as Int
                index[l * Self.moduleOrder.count + mi] = pairs.count
                pairs.append(LoRAPair(layer: l, module: m, rank: r, inFeatures: k, outFeatures: n,
                                      scaling: config.scaling(layer: l, module: m),
                                      aOffset: offset, bOffset: offset + r * k))
                offset += r * k + n * r
            }
        }
        self.pairs = pairs
        self.pairIndex = index
        // Read whole at every decode step with many adapters: huge pages (one page walk per 2 MiB).
        self.parameters = HugePages.zeros(Float.self, count: offset)
    }

    /// [out N, in K] of a module in the base model.
    public static func shape(of m: LinearModule, _ c: LlamaConfig) -> (Int, Int) {
        switch m {
        case .q: return (c.qDim, c.hiddenSize)
        case .k, .v: return (c.kvDim, c.hiddenSize)
        case .o: return (c.hiddenSize, c.qDim)
        case .gate, .up: return (c.intermediateSize, c.hiddenSize)
        case .down: return (c.hiddenSize, c.intermediateSize)
        }
    }

    public func pair(layer: Int, module: LinearModule) -> LoRAPair? {
        let i = index(layer: layer, module: module)
        return i < 0 ? nil : pairs[i]
    }

    /// The index into `pairs` of (layer, module), or -1.
    func index(layer: Int, module: LinearModule) -> Int {
        pairIndex[layer * Self.moduleOrder.count + Self.moduleOrder.firstIndex(of: module)!]
    }

    /// For an adapter loaded for inference (generate, chat, serve: `TrainingService.loadAdapter`, the
    /// serving cache's loader): per pair, A and B as `HalfMatrix` copies, so decode rows read half the
    /// bytes (8 adapters in a serving step read every adapter's A and B from DRAM). A matrix keeps the
    /// fp32 path when it has no copy, or, for B, when scaling · 2^-exponent is not an fp32 normal (the
    /// folded alpha would not be exact). Prompt rows (`apply`) keep reading `parameters`; call again
    /// after changing them.
    public func prepareHalfRows() {
        // One buffer at the parameters' offsets, advised for huge pages before it is written: with 8
        // adapters a step streams every copy from DRAM, and per-matrix arrays would take a page walk each 4 KiB.
        var storage = HugePages.zeros(UInt16.self, count: parameters.count)
        let exponents = parameters.withUnsafeBufferPointer { w in
            storage.withUnsafeMutableBufferPointer { s in
                pairs.map { p -> (a: Int?, b: Int?) in
                    func encode(_ at: Int, _ count: Int) -> Int? {
                        HalfMatrix.encode(UnsafeBufferPointer(rebasing: w[at..<at + count]),
                                          into: UnsafeMutableBufferPointer(rebasing: s[at..<at + count]))
                    }
                    let b = encode(p.bOffset, p.bCount)
                    return (encode(p.aOffset, p.aCount),
                            b.flatMap { (p.scaling * Float(sign: .plus, exponent: -$0, significand: 1)).isNormal ? $0 : nil })
                }
            }
        }
        halfRows = zip(pairs, exponents).map { p, e in
            (e.a.map { HalfMatrix(bits: storage[p.aOffset..<p.aOffset + p.aCount], exponent: $0) },
             e.b.map { HalfMatrix(bits: storage[p.bOffset..<p.bOffset + p.bCount], exponent: $0) })
        }
        halfBytes = storage.count * MemoryLayout<UInt16>.size
    }

    /// The parameters' bytes and those of the fp16 copies.
    public var residentBytes: Int { parameters.count * MemoryLayout<Float>.size + halfBytes }

    /// PEFT's initialisation: A ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(K), 1/sqrt(K)); B = 0,
    /// so a new adapter leaves the base model's outputs unchanged.
    public func initialize(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for p in pairs {
            let bound = 1 / Float(p.inFeatures).squareRoot()
            for i in 0..<p.aCount { parameters[p.aOffset + i] = Float(rng.nextUnitFloat() * 2 - 1) * bound }
            for i in 0..<p.bCount { parameters[p.bOffset + i] = 0 }
        }
    }

    /// Y[T, N] += scaling * (X[T, K] · Aᵀ) · Bᵀ. Dropout is a training-time operation only.
    public func apply(layer: Int, module: LinearModule, x: UnsafePointer<Float>, tokens: Int,
                      y: UnsafeMutablePointer<Float>) {
        guard let p = pair(layer: layer, module: module) else { return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: tokens * p.rank) { h in
            parameters.withUnsafeBufferPointer { w in
                let a = w.baseAddress! + p.aOffset, b = w.baseAddress! + p.bOffset
                // h[T, R] = X · Aᵀ ; Y += scaling * h · Bᵀ
                BLAS.sgemm(transB: true, m: tokens, n: p.rank, k: p.inFeatures, a: x, b: a, c: h.baseAddress!)
                BLAS.sgemm(transB: true, m: tokens, n: p.outFeatures, k: p.rank, alpha: p.scaling,
                           a: h.baseAddress!, b: b, beta: 1, c: y)
            }
        }
    }

    /// Decode rows: h[t, R] = X[t] · Aᵀ (`DenseRows.forward`), then Y[t] += scaling · h[t] · Bᵀ
    /// (`DenseRows.lowRank`), each (t, output) in an order fixed by its length alone, so a row's bits do not depend on `rows`:
    /// one row decoded alone, with others under this adapter, or under others, gives the same logits.
    /// With `prepareHalfRows`' copies, the kernels read A and B's fp16 bits, converting as they load, with
    /// 2^-exponent folded into their alphas: the same bits as the fp32 kernels on the fp16-rounded values.
    public func applyRows(layer: Int, module: LinearModule, x: UnsafePointer<Float>, ldx: Int, rows: Int,
                          y: UnsafeMutablePointer<Float>, ldy: Int) {
        let i = index(layer: layer, module: module)
        guard rows > 0, i >= 0, pairs[i].rank > 0 else { return }
        let p = pairs[i]
        let half = halfRows.isEmpty ? nil : halfRows[i]
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rows * p.rank) { h in
            parameters.withUnsafeBufferPointer { w in
                if let ha = half?.a {
                    DenseRows.forward(ha, k: p.inFeatures, rows: 0..<p.rank, x: x, ldx: ldx, tokens: rows,
                                      into: h.baseAddress!, ldy: p.rank, accumulate: false)
                } else {
                    DenseRows.forward(w.baseAddress! + p.aOffset, k: p.inFeatures, rows: 0..<p.rank, x: x, ldx: ldx, tokens: rows,
                                      into: h.baseAddress!, ldy: p.rank, accumulate: false)
                }
                if let hb = half?.b {
                    DenseRows.lowRank(hb, outputs: p.outFeatures, rank: p.rank, h: h.baseAddress!, ldh: p.rank, tokens: rows,
                                      into: y, ldy: ldy, alpha: p.scaling)
                } else {
                    DenseRows.lowRank(w.baseAddress! + p.bOffset, outputs: p.outFeatures, rank: p.rank, h: h.baseAddress!,
                                      ldh: p.rank, tokens: rows, into: y, ldy: ldy, alpha: p.scaling)
                }
            }
        }
    }

    public var parameterCount: Int { parameters.count }
}
