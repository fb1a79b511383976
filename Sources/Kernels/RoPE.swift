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
        rotate(x, tokens: tokens, heads: heads, positions: positions, sign: 1)
    }

    /// Backward of `apply`: the rotation is orthogonal, so the gradient turns by the opposite angle.
    public func applyInverse(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, positions: UnsafePointer<Int32>) {
        rotate(x, tokens: tokens, heads: heads, positions: positions, sign: -1)
    }

    /// Turns each (x[i], x[i + E/2]) pair by sign * position * invFreq[i].
    @inline(__always)
    private func rotate(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, positions: UnsafePointer<Int32>, sign: Float) {
        let half = headDim / 2
        let stride = heads * headDim
        invFreq.withUnsafeBufferPointer { f in
            for t in 0..<tokens {
                let p = Float(positions[t])
                let row = x + t * stride
                for i in 0..<half {
                    let angle = p * f[i]
                    let c = cosf(angle), s = sign * sinf(angle)
                    for h in 0..<heads {
                        let base = row + h * headDim
                        let x1 = base[i], x2 = base[i + half]
                        base[i] = x1 * c - x2 * s
                        base[i + half] = x2 * c + x1 * s
                    }
                }
            }
        }
    }
}
