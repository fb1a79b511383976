import Foundation

/// Element-wise activations and the softmax used by attention and sampling.
public enum Activations {
    /// SwiGLU's gate: G[n] <- silu(G[n]) * U[n], n < count. silu(g) = g / (1 + e^-g).
    @inline(__always)
    public static func swiglu(gate g: UnsafeMutablePointer<Float>, up u: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = g[i]
            g[i] = x / (1 + expf(-x)) * u[i]
        }
    }

    /// In-place softmax over x[0..<n]; returns log Σ exp(x) (what training's backward keeps).
    /// Subtracting the max keeps exp from overflowing; the sum runs left to right, so a row's bits
    /// depend on that row alone.
    @inline(__always) @discardableResult
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) -> Float {
        if n == 0 { return -Float.infinity }
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var sum: Float = 0
        for i in 0..<n {
            let e = expf(x[i] - m)
            x[i] = e
            sum += e
        }
        let inv = 1 / sum
        for i in 0..<n { x[i] *= inv }
        return m + logf(sum)
    }

    /// log Σ exp(x[i]) over x[0..<n], computed in Double after max-subtraction: the NLL of a token
    /// is logsumexp - logit, and Double keeps it accurate over a 49k vocabulary.
    @inline(__always)
    public static func logSumExp(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var sum = 0.0
        for i in 0..<n { sum += Double(expf(x[i] - m)) }
        return Double(m) + log(sum)
    }
}

extension Activations {
    /// Backward of `swiglu`: given pre-activation gate G and up U and dA for A = silu(G) ⊙ U,
    /// writes dG into `dGate` and dU into `dUp` (overwriting).
    /// silu'(g) = σ(g) · (1 + g · (1 - σ(g))).
    @inline(__always)
    public static func swigluBackward(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                      dA: UnsafePointer<Float>, dGate: UnsafeMutablePointer<Float>,
                                      dUp: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = g[i]
            let s = 1 / (1 + expf(-x))
            let silu = x * s
            let d = dA[i]
            dUp[i] = d * silu
            dGate[i] = d * u[i] * s * (1 + x * (1 - s))
        }
    }

    /// A[i] = silu(G[i]) * U[i] into a separate output (the forward, recomputed in backward).
    @inline(__always)
    public static func swiglu(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                              into a: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = g[i]
            a[i] = x / (1 + expf(-x)) * u[i]
        }
    }
}
