/// A frozen linear layer's weight W of shape [N out, K in] (PyTorch's `nn.Linear.weight` layout).
///
/// Implementations hold the weight in whatever format it was loaded in (fp32 now; 4-bit blocks later)
/// and compute with fp32 activations. Inputs are row-major [T, K] activations, T tokens.
public protocol LinearWeight: AnyObject, Sendable {
    var outFeatures: Int { get }   // N
    var inFeatures: Int { get }    // K

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y when `accumulate`).
    func forward(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool)

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y when `accumulate`) for T independent rows (T tokens decoded in one step), each row bit-identical
    /// to `forward` of that row alone with `tokens: 1`, whatever B is (batch-invariant decoding).
    /// The default (`forwardRowsReference`) calls the one-row forward per row.
    func forwardRows(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool)

    /// For each chunk (a range of rows of X and of Y), Y[chunk] = X[chunk] · Wᵀ (+ Y when `accumulate`),
    /// each chunk's bits those of `forward` of that chunk alone, whatever other chunks come with it
    /// (several prompts prefilled in one serving step). Implementations may share work between the
    /// chunks (a quantized weight dequantizes each tile once); the default calls `forward` per chunk.
    func forwardChunks(_ x: UnsafePointer<Float>, chunks: [Range<Int>], into y: UnsafeMutablePointer<Float>, accumulate: Bool)

    /// dX[T, K] += dY[T, N] · W. Frozen weights get no gradient of their own.
    func backwardInput(_ dy: UnsafePointer<Float>, tokens: Int, into dx: UnsafeMutablePointer<Float>)

    /// Bytes resident for this weight (data and any quantization state).
    var residentBytes: Int { get }
}

extension LinearWeight {
    public func forwardRows(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        forwardRowsReference(x, rows: rows, into: y, accumulate: accumulate)
    }

    public func forwardChunks(_ x: UnsafePointer<Float>, chunks: [Range<Int>], into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        forwardChunksReference(x, chunks: chunks, into: y, accumulate: accumulate)
    }

    /// Plain twin of `forwardChunks`: one `forward` per chunk.
    public func forwardChunksReference(_ x: UnsafePointer<Float>, chunks: [Range<Int>], into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        for c in chunks where !c.isEmpty {
            forward(x + c.lowerBound * inFeatures, tokens: c.count, into: y + c.lowerBound * outFeatures, accumulate: accumulate)
        }
    }

    /// Plain twin of `forwardRows`: one one-token `forward` per row.
    public func forwardRowsReference(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        for r in 0..<rows {
            forward(x + r * inFeatures, tokens: 1, into: y + r * outFeatures, accumulate: accumulate)
        }
    }
}

/// An fp32 weight, multiplied with sgemm.
public final class DenseWeight: LinearWeight, @unchecked Sendable {
    public let outFeatures: Int
    public let inFeatures: Int
    /// Row-major [N, K].
    public let data: [Float]

    public init(outFeatures: Int, inFeatures: Int, data: [Float]) {
        precondition(data.count == outFeatures * inFeatures, "DenseWeight: data has \(data.count) floats, expected \(outFeatures)x\(inFeatures)")
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.data = data
    }

    public var residentBytes: Int { data.count * MemoryLayout<Float>.size }

    public func forward(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        data.withUnsafeBufferPointer { w in
            BLAS.sgemm(transB: true, m: tokens, n: outFeatures, k: inFeatures,
                       a: x, b: w.baseAddress!, beta: accumulate ? 1 : 0, c: y)
        }
    }

    public func backwardInput(_ dy: UnsafePointer<Float>, tokens: Int, into dx: UnsafeMutablePointer<Float>) {
        data.withUnsafeBufferPointer { w in
            BLAS.sgemm(m: tokens, n: inFeatures, k: outFeatures,
                       a: dy, b: w.baseAddress!, beta: 1, c: dx)
        }
    }
}
