import CKernels
import Foundation

/// Rotary position embedding in HF's rotate-half layout: within each head of size E, element i
/// pairs with element i + E/2, and pair i turns by position * invFreq[i].
public struct RoPE: Sendable {
    public let headDim: Int          // E
    public let invFreq: [Float]      // E/2

    /// invFreq[i] = 1 / theta^(2i/E), in fp32 as transformers computes the default rope
    /// (`1.0 / (base ** (arange(0, dim, 2).float() / dim))`).
    public init(headDim: Int, theta: Float) {
        self.headDim = headDim
        self.invFreq = (0..<(headDim / 2)).map { i in
            1 / powf(theta, Float(2 * i) / Float(headDim))
        }
    }

    public init(headDim: Int, invFreq: [Float]) {
        self.headDim = headDim
        self.invFreq = invFreq
    }

    /// Rotates X[T, heads*E] in place; token t sits at position positions[t].
    /// cos/sin come from the fp32 angle position * invFreq[i], as transformers computes them.
    public func apply(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, positions: UnsafePointer<Int32>) {
        withTable(positions, tokens: tokens) { c, s in apply(x, tokens: tokens, heads: heads, cos: c, sin: s) }
    }

    /// Backward of `apply`: the rotation is orthogonal, so the gradient turns by the opposite angle.
    public func applyInverse(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, positions: UnsafePointer<Int32>) {
        withTable(positions, tokens: tokens) { c, s in applyInverse(x, tokens: tokens, heads: heads, cos: c, sin: s) }
    }

    /// cos[T, E/2] and sin[T, E/2] of the angles positions[t] * invFreq[i] (fp32 product, then cosf
    /// and sinf): what `apply` turns by. Every layer turns by the same angles, so a forward computes
    /// them once (`Workspace`) instead of once per layer and per q / k.
    public func table(positions: UnsafePointer<Int32>, tokens: Int, cos c: UnsafeMutablePointer<Float>,
                      sin s: UnsafeMutablePointer<Float>) {
        let half = headDim / 2
        invFreq.withUnsafeBufferPointer { f in
            for t in 0..<tokens {
                let p = Float(positions[t])
                for i in 0..<half {
                    let angle = p * f[i]
                    c[t * half + i] = cosf(angle)
                    s[t * half + i] = sinf(angle)
                }
            }
        }
    }

    /// `apply` with the angles' cos and sin given ([T, E/2] each, from `table`): the AVX2 kernel
    /// `ck_rope`, or its portable twin (the same bits) when `Activations.useSIMD` is off.
    public func apply(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, cos c: UnsafePointer<Float>,
                      sin s: UnsafePointer<Float>) {
        rotate(x, tokens: tokens, heads: heads, cos: c, sin: s, sign: 1)
    }

    /// `applyInverse` with the angles' cos and sin given (turns by minus the angles).
    public func applyInverse(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, cos c: UnsafePointer<Float>,
                             sin s: UnsafePointer<Float>) {
        rotate(x, tokens: tokens, heads: heads, cos: c, sin: s, sign: -1)
    }

    /// Turns each (x[i], x[i + E/2]) pair by sign * angle: x[i]·c − x[i+E/2]·s, x[i+E/2]·c + x[i]·s with
    /// s = sign · sin (no fused multiply-add, in either build).
    @inline(__always)
    private func rotate(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, cos c: UnsafePointer<Float>,
                        sin s: UnsafePointer<Float>, sign: Float) {
        if tokens <= 0 { return }
        if Activations.useSIMD {
            ck_rope(x, tokens, heads, headDim, c, s, sign)
        } else {
            ck_rope_ref(x, tokens, heads, headDim, c, s, sign)
        }
    }

    /// The table of `positions` in temporary storage, for callers that turn once per table.
    @inline(__always)
    private func withTable(_ positions: UnsafePointer<Int32>, tokens: Int,
                           _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> Void) {
        let n = max(1, tokens * (headDim / 2))
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * n) { buf in
            let c = buf.baseAddress!, s = c + n
            table(positions: positions, tokens: tokens, cos: c, sin: s)
            body(c, s)
        }
    }
}
