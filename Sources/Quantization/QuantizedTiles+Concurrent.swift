import Kernels

/// Whole tiles spread over the pool: the forward of prefill chunks (and of any T > 1 forward).
///
/// `QuantizedTiles.forward` dequantizes a tile with every thread, then splits its sgemm over them:
/// two parallel regions a tile, and each thread packs all of X again for its half of every tile.
/// Here each pool task takes whole tiles: it dequantizes one into its own thread's scratch and
/// multiplies it with every chunk single-threaded, so a weight costs one region, X is packed once
/// a tile, and dequantizing overlaps the other threads' products.
extension QuantizedTiles {
    /// Tiles a weight [N, K] is cut into for `threads` threads: about 1 MiB of fp32 each (the
    /// tile a core's L2 holds beside its packed panels), at least one a thread, a multiple of the
    /// threads (no thread left with one tile more), at most N.
    @inline(__always)
    static func concurrentTileCount(n: Int, k: Int, threads: Int) -> Int {
        let t = max(1, threads)
        let bytes = n * k * MemoryLayout<Float>.size
        let byMemory = (bytes + (1 << 20) - 1) >> 20
        let tiles = (max(t, byMemory) + t - 1) / t * t
        return max(1, min(n, tiles))
    }

    /// `forwardChunks` with whole tiles as the pool's tasks (`concurrentTileCount` of them, rows split
    /// evenly): tile j's rows are dequantized into the running thread's scratch and multiplied with
    /// each chunk by one sgemm (M the chunk's rows, N the tile's, K, leading dimensions K and N), so a
    /// chunk's bits depend on its own rows and the tiling alone, never on the other chunks or on which
    /// thread ran a tile. `dequantRows` must be safe to call from several threads at once (it reads).
    static func forwardChunksConcurrently(n: Int, k: Int, x: UnsafePointer<Float>, chunks: [Range<Int>],
                                          y: UnsafeMutablePointer<Float>, accumulate: Bool,
                                          dequantRows: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        if chunks.isEmpty || n == 0 { return }
        let tiles = concurrentTileCount(n: n, k: k, threads: Parallel.insideRegion ? 1 : Parallel.threads)
        let per = (n + tiles - 1) / tiles
        let count = (n + per - 1) / per
        // One pool task a tile (claimed as threads come free), none split again.
        Parallel.forEachChunk(count, chunksPerThread: count) { part in
            let buf = QuantizedScratch.floats(per * k)
            for j in part {
                let r0 = j * per, r1 = min(n, r0 + per)
                dequantRows(r0, r1, buf)
                for c in chunks {
                    BLAS.sgemm(transB: true, m: c.count, n: r1 - r0, k: k, a: x + c.lowerBound * k, lda: k, b: buf, ldb: k,
                               beta: accumulate ? 1 : 0, c: y + c.lowerBound * n + r0, ldc: n)
                }
            }
        }
    }
}
