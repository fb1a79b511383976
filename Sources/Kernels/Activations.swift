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
    /// Large counts are split over `Parallel`'s pool: each element's arithmetic is the same whatever
    /// the split, so the bits are those of `swigluBackwardRange` over the whole range.
    public static func swigluBackward(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                      dA: UnsafePointer<Float>, dGate: UnsafeMutablePointer<Float>,
                                      dUp: UnsafeMutablePointer<Float>, count: Int) {
        forEachElementChunk(count) { r in
            swigluBackwardRange(gate: g, up: u, dA: dA, dGate: dGate, dUp: dUp, r)
        }
    }

    /// `swigluBackward` of elements in `range`, on the calling thread (the plain twin).
    @inline(__always)
    public static func swigluBackwardRange(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                           dA: UnsafePointer<Float>, dGate: UnsafeMutablePointer<Float>,
                                           dUp: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        for i in range {
            let x = g[i]
            let s = 1 / (1 + expf(-x))
            let silu = x * s
            let d = dA[i]
            dUp[i] = d * silu
            dGate[i] = d * u[i] * s * (1 + x * (1 - s))
        }
    }

    /// A[i] = silu(G[i]) * U[i] into a separate output (the forward, recomputed in backward).
    /// Large counts are split over `Parallel`'s pool (elementwise: the same bits whatever the split,
    /// so one decode row gets the same bits alone or beside others).
    public static func swiglu(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                              into a: UnsafeMutablePointer<Float>, count: Int) {
        forEachElementChunk(count) { r in swigluRange(gate: g, up: u, into: a, r) }
    }

    /// `swiglu(gate:up:into:count:)` of elements in `range`, on the calling thread (the plain twin).
    @inline(__always)
    public static func swigluRange(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                   into a: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        for i in range {
            let x = g[i]
            a[i] = x / (1 + expf(-x)) * u[i]
        }
    }

    /// Elementwise work of fewer elements runs whole on the calling thread: a parallel region costs
    /// a few microseconds, about 1,000 expf calls.
    public static let parallelMinimumElements = 1 << 14

    /// Runs `body` over 0..<count, split over `Parallel`'s pool when the work is large and the caller
    /// is not already inside a region. For work whose every element (or row) is computed the same
    /// whatever range it falls in.
    @inline(__always)
    static func forEachElementChunk(_ count: Int, minimum: Int = parallelMinimumElements, _ body: (Range<Int>) -> Void) {
        if count < minimum || Parallel.threads <= 1 || Parallel.insideRegion {
            body(0..<count)
            return
        }
        Parallel.forEachChunk(count, minChunk: minimum / 2, body)
    }
}

extension Activations {
    /// Runs `body` over rows 0..<rows of `width` elements each, split over `Parallel`'s pool (several
    /// chunks a thread: causal rows differ in length) when there are at least
    /// `parallelMinimumElements` elements and the caller is not inside a region. For rows computed
    /// independently of each other, so the split never changes a bit.
    @inline(__always)
    public static func forEachRowChunk(_ rows: Int, width: Int, _ body: (Range<Int>) -> Void) {
        if rows < 2 || rows * width < parallelMinimumElements || Parallel.threads <= 1 || Parallel.insideRegion {
            body(0..<rows)
            return
        }
        Parallel.forEachChunk(rows, minChunk: max(1, parallelMinimumElements / 4 / max(1, width)), chunksPerThread: 4, body)
    }
}
