import Foundation
import Kernels
import Model
import Training

/// A plain Float64 twin of the training forward (no BLAS, no caching): the loss whose central
/// finite differences check the hand-written backward. Covers every family: q/k/v biases when the
/// layer has them, the model's (possibly scaled) rotary frequencies, the sliding window.
enum DoubleReference {
    static func weights(_ w: LinearWeight) -> [Double] { (w as! DenseWeight).data.map(Double.init) }

    /// Σ over scored positions of -log softmax(logits)[target], times lossScale.
    static func loss(model: LlamaModel, adapter: LoRAAdapter, params: [Double], batch: MicroBatch, lossScale: Double) -> Double {
        let c = model.config
        let N = batch.count, T = batch.length, D = c.hiddenSize, E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let eps = Double(c.rmsNormEps)
        func rms(_ x: [Double], _ w: [Float]) -> [Double] {
            var y = x
            for t in 0..<N {
                var ss = 0.0
                for i in 0..<D { ss += x[t * D + i] * x[t * D + i] }
                let r = 1 / (ss / Double(D) + eps).squareRoot()
                for i in 0..<D { y[t * D + i] = Double(w[i]) * x[t * D + i] * r }
            }
            return y
        }
        func lin(_ x: [Double], _ w: LinearWeight, _ layer: Int, _ m: LinearModule, bias: [Float]? = nil) -> [Double] {
            let n = w.outFeatures, k = w.inFeatures
            let W = weights(w)
            var y = [Double](repeating: 0, count: N * n)
            for t in 0..<N { for o in 0..<n { var s = 0.0; for i in 0..<k { s += x[t * k + i] * W[o * k + i] }; y[t * n + o] = s } }
            if let bias { for t in 0..<N { for o in 0..<n { y[t * n + o] += Double(bias[o]) } } }
            if let p = adapter.pair(layer: layer, module: m) {
                for t in 0..<N {
                    var h = [Double](repeating: 0, count: p.rank)
                    for r in 0..<p.rank { for i in 0..<k { h[r] += x[t * k + i] * params[p.aOffset + r * k + i] } }
                    for o in 0..<n { var s = 0.0; for r in 0..<p.rank { s += params[p.bOffset + o * p.rank + r] * h[r] }; y[t * n + o] += Double(p.scaling) * s }
                }
            }
            return y
        }
        func rope(_ x: inout [Double], heads: Int) {
            for t in 0..<N {
                for h in 0..<heads {
                    for i in 0..<(E / 2) {
                        let f = Double(model.rope.invFreq[i])
                        let a = Double(batch.positions[t]) * f
                        let b = t * heads * E + h * E
                        let x1 = x[b + i], x2 = x[b + i + E / 2]
                        x[b + i] = x1 * cos(a) - x2 * sin(a)
                        x[b + i + E / 2] = x2 * cos(a) + x1 * sin(a)
                    }
                }
            }
        }
        var x = [Double](repeating: 0, count: N * D)
        for t in 0..<N { for i in 0..<D { x[t * D + i] = Double(model.weights.embedding[batch.tokens[t] * D + i]) } }
        for l in 0..<c.numLayers {
            let w = model.weights.layers[l]
            let xn = rms(x, w.attnNorm)
            var q = lin(xn, w.q, l, .q, bias: w.qBias), k = lin(xn, w.k, l, .k, bias: w.kBias)
            let v = lin(xn, w.v, l, .v, bias: w.vBias)
            rope(&q, heads: H); rope(&k, heads: Hk)
            var att = [Double](repeating: 0, count: N * H * E)
            for b in 0..<batch.rows {
                for h in 0..<H {
                    let kh = h / (H / Hk)
                    for i in 0..<T {
                        var lo = Int(batch.visibleStart[b * T + i])
                        if let W = c.slidingWindow { lo = max(lo, i - W + 1) }
                        var s = [Double](repeating: 0, count: i - lo + 1)
                        for j in lo...i {
                            var d = 0.0
                            for e in 0..<E { d += q[(b * T + i) * H * E + h * E + e] * k[(b * T + j) * Hk * E + kh * E + e] }
                            s[j - lo] = d / Double(E).squareRoot()
                        }
                        let m = s.max()!
                        let z = s.map { exp($0 - m) }.reduce(0, +)
                        for j in lo...i {
                            let p = exp(s[j - lo] - m) / z
                            for e in 0..<E { att[(b * T + i) * H * E + h * E + e] += p * v[(b * T + j) * Hk * E + kh * E + e] }
                        }
                    }
                }
            }
            let o = lin(att, w.o, l, .o)
            for i in 0..<x.count { x[i] += o[i] }
            let xn2 = rms(x, w.mlpNorm)
            let g = lin(xn2, w.gate, l, .gate), u = lin(xn2, w.up, l, .up)
            let a = zip(g, u).map { $0 / (1 + exp(-$0)) * $1 }
            let dn = lin(a, w.down, l, .down)
            for i in 0..<x.count { x[i] += dn[i] }
        }
        let hidden = rms(x, model.weights.finalNorm)
        let head = weights(model.weights.lmHead)
        let V = c.vocabSize
        var total = 0.0
        for t in 0..<N where batch.targets[t] >= 0 {
            var logits = [Double](repeating: 0, count: V)
            for o in 0..<V { var s = 0.0; for i in 0..<D { s += hidden[t * D + i] * head[o * D + i] }; logits[o] = s }
            let m = logits.max()!
            let lse = m + log(logits.map { exp($0 - m) }.reduce(0, +))
            total += lse - logits[Int(batch.targets[t])]
        }
        return total * lossScale
    }
}
