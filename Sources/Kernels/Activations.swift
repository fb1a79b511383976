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

    /// In-place softmax over x[0..<n]. Subtracting the max keeps exp from overflowing.
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        if n == 0 { return }
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
