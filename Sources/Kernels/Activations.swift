import CKernels
import Foundation

/// Element-wise activations and the softmax used by attention and sampling.
public enum Activations {
    /// SwiGLU's gate: G[n] <- silu(G[n]) * U[n], n < count. silu(g) = g / (1 + e^-g).
    public static func swiglu(gate g: UnsafeMutablePointer<Float>, up u: UnsafePointer<Float>, count: Int) {
        swiglu(gate: UnsafePointer(g), up: u, into: g, count: count)
    }

    /// Whether this CPU runs the AVX2 + FMA elementwise kernels (`elementwise_kernels.c`).
    public static let cpuHasSIMD: Bool = ck_cpu_has_avx2_fma() != 0

    nonisolated(unsafe) private static var _useSIMD = cpuHasSIMD

    /// Whether the AVX2 elementwise kernels are in use, else their portable twins (`ck_*_ref`, the
    /// same bits). Tests switch it; it must not change while a forward or backward runs.
    public static var useSIMD: Bool {
        get { _useSIMD }
        set { _useSIMD = newValue && cpuHasSIMD }
    }

    /// In-place softmax over x[0..<n]; returns log Σ exp(x) (what training's backward keeps).
    /// Subtracting the max keeps exp from overflowing; the sum runs in 8 lanes (element i in lane
    /// i mod 8, each lane left to right) added in a fixed tree, so a row's bits depend on that row alone.
    /// exp is Cephes' expf polynomial (`elementwise_kernels.c`), SIMD or its portable twin.
    @inline(__always) @discardableResult
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) -> Float {
        useSIMD ? ck_softmax(x, n) : ck_softmax_ref(x, n)
    }

    /// log Σ exp(x[i]) over x[0..<n] after max-subtraction, the exps summed in Double (8 lanes, a fixed
    /// tree): the NLL of a token is logsumexp - logit, and Double keeps it accurate over a 49k vocabulary.
    @inline(__always)
    public static func logSumExp(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        useSIMD ? ck_logsumexp(x, n) : ck_logsumexp_ref(x, n)
    }

    /// x[i] <- exp(x[i] - sub) * scale over x[0..<n] (the LM head's softmax gradient, scaled).
    @inline(__always)
    public static func expScaled(_ x: UnsafeMutablePointer<Float>, count n: Int, subtract sub: Float, scale: Float) {
        if useSIMD { ck_exp_scaled(x, n, sub, scale) } else { ck_exp_scaled_ref(x, n, sub, scale) }
    }

    /// One attention-backward row: P[j] <- exp(S[j] - lse) (S the scaled scores, in `p`), and
    /// dS[j] <- P[j] · (dP[j] - dsum) (dP in `d`), j < n.
    @inline(__always)
    public static func attentionBackwardRow(p: UnsafeMutablePointer<Float>, d: UnsafeMutablePointer<Float>, count n: Int,
                                            lse: Float, dsum: Float) {
        if useSIMD { ck_attention_backward_row(p, d, n, lse, dsum) } else { ck_attention_backward_row_ref(p, d, n, lse, dsum) }
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

    /// `swigluBackward` of elements in `range`, on the calling thread (the split's one-thread twin).
    @inline(__always)
    public static func swigluBackwardRange(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                           dA: UnsafePointer<Float>, dGate: UnsafeMutablePointer<Float>,
                                           dUp: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        let o = range.lowerBound, n = range.count
        if useSIMD {
            ck_swiglu_backward(g + o, u + o, dA + o, dGate + o, dUp + o, n)
        } else {
            ck_swiglu_backward_ref(g + o, u + o, dA + o, dGate + o, dUp + o, n)
        }
    }

    /// A[i] = silu(G[i]) * U[i] into a separate output (the forward, recomputed in backward).
    /// Large counts are split over `Parallel`'s pool (elementwise: the same bits whatever the split,
    /// so one decode row gets the same bits alone or beside others).
    public static func swiglu(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                              into a: UnsafeMutablePointer<Float>, count: Int) {
        forEachElementChunk(count) { r in swigluRange(gate: g, up: u, into: a, r) }
    }

    /// `swiglu(gate:up:into:count:)` of elements in `range`, on the calling thread (the split's one-thread twin).
    @inline(__always)
    public static func swigluRange(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>,
                                   into a: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        let o = range.lowerBound
        if useSIMD { ck_swiglu(g + o, u + o, a + o, range.count) } else { ck_swiglu_ref(g + o, u + o, a + o, range.count) }
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
