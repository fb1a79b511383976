#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import Kernels

/// The per-thread buffers of the quantized weights (`ThreadScratch` slots): dequantized weight tiles,
/// so `forward` / `backwardInput` allocate nothing once a thread has seen its largest tile and concurrent
/// callers never share a tile; and quantized decode activations (`Q8ActivationRows`), a slot apart so
/// that a caller holding one never sees the other overwritten.
enum QuantizedScratch {
    private static let tiles = ThreadScratch()
    private static let q8 = ThreadScratch()
    private static let panels = ThreadScratch()

    /// The calling thread's tile buffer, at least `count` floats long. Contents are unspecified.
    static func floats(_ count: Int) -> UnsafeMutablePointer<Float> { tiles.floats(count) }

    /// The calling thread's panel buffer for width K (`ck_panel_pack`: K x 32 floats), 64-byte aligned (the
    /// panel kernels' vector loads then never split a cache line). Contents are unspecified.
    static func panel(k: Int) -> UnsafeMutablePointer<Float> {
        let base = panels.floats(k * Int(CK_PANEL_WIDTH) + 16)
        let misaligned = Int(bitPattern: base) & 63
        return misaligned == 0 ? base : base + (64 - misaligned) / MemoryLayout<Float>.size
    }

    /// The calling thread's buffer for quantized decode activations, at least `count` floats long.
    static func q8Activations(_ count: Int) -> UnsafeMutablePointer<Float> { q8.floats(count) }
}

/// Shared driver for quantized linear weights: tiles of rows dequantized to fp32, multiplied with sgemm
/// (`backwardInput`) or, for prompt rows, packed into panels (`forwardChunksConcurrently`).
enum QuantizedTiles {
    /// Rows per tile for width K: about 256K floats (1 MiB), at least 16 rows, at most N.
    @inline(__always)
    static func rows(n: Int, k: Int) -> Int { min(n, max(16, (1 << 18) / max(1, k))) }

    /// W's rows in tiles of `rows(n:k:)`, each dequantized into one scratch buffer ([r1 - r0, K]
    /// row-major) and handed to `body(r0, r1, tile)` in row order.
    @inline(__always)
    static func forEachTile(n: Int, k: Int, _ dequantRows: (Int, Int, UnsafeMutablePointer<Float>) -> Void,
                            _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        let tile = rows(n: n, k: k)
        let buf = QuantizedScratch.floats(tile * k)
        var r0 = 0
        while r0 < n {
            let r1 = min(n, r0 + tile)
            fillTile(r0, r1, k: k, buf, dequantRows)
            body(r0, r1, buf)
            r0 = r1
        }
    }

    /// dX[T, K] += dY[T, N] · W, tile by tile: dX += dY[:, r0..<r1] · tile.
    @inline(__always)
    static func backwardInput(n: Int, k: Int, dy: UnsafePointer<Float>, tokens: Int, dx: UnsafeMutablePointer<Float>,
                              dequantRows: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        if tokens <= 0 { return }
        forEachTile(n: n, k: k, dequantRows) { r0, r1, buf in
            BLAS.sgemm(m: tokens, n: k, k: r1 - r0, a: dy + r0, lda: n, b: buf, ldb: k, beta: 1, c: dx, ldc: k)
        }
    }

    /// Dequantizes rows r0..<r1 into buf, split over `Parallel` threads.
    @inline(__always)
    static func fillTile(_ r0: Int, _ r1: Int, k: Int, _ buf: UnsafeMutablePointer<Float>,
                         _ dequantRows: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        Parallel.forEachChunk(r1 - r0, minChunk: max(1, 16_384 / max(1, k))) { range in
            dequantRows(r0 + range.lowerBound, r0 + range.upperBound, buf + range.lowerBound * k)
        }
    }
}

/// A frozen weight held in a compressed format that can produce fp32 rows on demand. Prefill,
/// training and backward dequantize tiles of rows and multiply them (`QuantizedTiles`: prompt chunks
/// through packed panels, training's larger forwards and backward with sgemm);
/// a single token (decoding) uses the format's fused dequantize-and-dot GEMV.
public protocol RowDequantizedWeight: LinearWeight {
    /// Rows r0..<r1 of W into dst[(r1 - r0) * K], fp32.
    func dequantizeRows(_ r0: Int, _ r1: Int, into dst: UnsafeMutablePointer<Float>)
    /// Whether `gemv` handles this weight's shape.
    var hasGEMV: Bool { get }
    /// y[N] = W · x[K] (+ y when accumulate), one token.
    func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool)
}

extension RowDequantizedWeight {
    /// Y[T, N] = X[T, K] · Wᵀ (+ Y when accumulate).
    public func forward(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if tokens == 1 && hasGEMV {
            gemv(x, into: y, accumulate: accumulate)
            return
        }
        // Whole tiles over the pool (`forwardChunksConcurrently`), as `forwardChunks` runs a chunk.
        QuantizedTiles.forwardChunksConcurrently(n: outFeatures, k: inFeatures, x: x, chunks: [0..<tokens], y: y,
                                                 accumulate: accumulate) { r0, r1, dst in
            self.dequantizeRows(r0, r1, into: dst)
        }
    }

    /// `forward` per chunk, sharing each dequantized tile between the chunks (`QuantizedTiles.forwardChunksConcurrently`);
    /// a one-row chunk takes the GEMV, as `forward` does.
    public func forwardChunks(_ x: UnsafePointer<Float>, chunks: [Range<Int>], into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        var tiled: [Range<Int>] = []
        tiled.reserveCapacity(chunks.count)
        for c in chunks where !c.isEmpty {
            if c.count == 1 && hasGEMV {
                gemv(x + c.lowerBound * inFeatures, into: y + c.lowerBound * outFeatures, accumulate: accumulate)
            } else {
                tiled.append(c)
            }
        }
        QuantizedTiles.forwardChunksConcurrently(n: outFeatures, k: inFeatures, x: x, chunks: tiled, y: y, accumulate: accumulate) { r0, r1, dst in
            self.dequantizeRows(r0, r1, into: dst)
        }
    }

    /// dX[T, K] += dY[T, N] · W.
    public func backwardInput(_ dy: UnsafePointer<Float>, tokens: Int, into dx: UnsafeMutablePointer<Float>) {
        QuantizedTiles.backwardInput(n: outFeatures, k: inFeatures, dy: dy, tokens: tokens, dx: dx) { r0, r1, dst in
            self.dequantizeRows(r0, r1, into: dst)
        }
    }
}
