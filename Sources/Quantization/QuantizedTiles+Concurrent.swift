import CKernels
import Kernels

/// Whole tiles spread over the pool: the forward of prefill chunks (and of any T > 1 forward).
///
/// Each pool task takes whole tiles: it dequantizes one into its own thread's scratch and multiplies it
/// with every chunk single-threaded, so a weight costs one parallel region and dequantizing overlaps the
/// other threads' products. Chunks of at most `panelRowsLimit` rows (prompt chunks of `lora generate` and
/// `lora serve`) share one pass over the tile: its rows packed once, 32 at a time, into a k-major panel
/// (`ck_panel_pack`) that every row of every such chunk runs over (`ck_panel_rows_*`), instead of one sgemm
/// per chunk, each packing the whole tile again. Larger chunks (training's T = batch x seq) keep sgemm.
extension QuantizedTiles {
    /// The most rows a chunk may have to go through the panels (`LlamaModel.defaultPrefillChunk`'s 256:
    /// generate's and serve's prompt chunks); a larger chunk takes sgemm. The choice depends on the chunk's
    /// own size alone, so a chunk's bits never depend on the chunks beside it.
    static let panelRowsLimit = 256

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
    /// evenly): tile j's rows are dequantized into the running thread's scratch; then every row of the
    /// chunks of at most `panelRowsLimit` rows goes through the tile's panels in one `ck_panel_rows_*` call a
    /// panel (each output one fixed fma chain over k: its bits depend on its own input row alone), and each
    /// larger chunk gets one sgemm (M the chunk's rows, N the tile's, K, leading dimensions K and N). So a
    /// chunk's bits never depend on the other chunks or on which thread ran a tile. `dequantRows` must be
    /// safe to call from several threads at once (it reads).
    static func forwardChunksConcurrently(n: Int, k: Int, x: UnsafePointer<Float>, chunks: [Range<Int>],
                                          y: UnsafeMutablePointer<Float>, accumulate: Bool,
                                          dequantRows: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        if chunks.isEmpty || n == 0 { return }
        var panelRows: [Int] = []
        var large: [Range<Int>] = []
        for c in chunks {
            if c.count <= panelRowsLimit { panelRows.append(contentsOf: c) } else { large.append(c) }
        }
        let tiles = concurrentTileCount(n: n, k: k, threads: Parallel.insideRegion ? 1 : Parallel.threads)
        let per = (n + tiles - 1) / tiles
        let count = (n + per - 1) / per
        let build = PanelRowsBuild.current
        panelRows.withUnsafeBufferPointer { rows in
            // One pool task a tile (claimed as threads come free), none split again.
            Parallel.forEachChunk(count, chunksPerThread: count) { part in
                let buf = QuantizedScratch.floats(per * k)
                for j in part {
                    let r0 = j * per, r1 = min(n, r0 + per)
                    if !large.isEmpty {
                        dequantRows(r0, r1, buf)
                        for c in large {
                            BLAS.sgemm(transB: true, m: c.count, n: r1 - r0, k: k, a: x + c.lowerBound * k, lda: k, b: buf, ldb: k,
                                       beta: accumulate ? 1 : 0, c: y + c.lowerBound * n + r0, ldc: n)
                        }
                    }
                    if rows.isEmpty { continue }
                    let panel = QuantizedScratch.panel(k: k)
                    var p0 = r0
                    while p0 < r1 {
                        let width = min(Int(CK_PANEL_WIDTH), r1 - p0)
                        // Without sgemm chunks, each panel's rows are dequantized just before they are packed (32 rows
                        // still in L1 / L2, where a whole tile's would have left L2); the same values either way.
                        let rowMajor = large.isEmpty ? buf : buf + (p0 - r0) * k
                        if large.isEmpty { dequantRows(p0, p0 + width, buf) }
                        ck_panel_pack(rowMajor, width, k, panel)
                        build.run(panel, width: width, k: k, x: x, rows: rows, y: y + p0, ldy: n, accumulate: accumulate)
                        p0 += width
                    }
                }
            }
        }
    }
}

/// Which build of `ck_panel_rows` runs: AVX-512F where `QuantizedKernelDispatch.useAVX512VL`, else AVX2 + FMA
/// where `useAVX2`, else the portable twin. All three give the same bits; tests switch the flags to compare.
enum PanelRowsBuild {
    case avx512, avx2, portable

    static var current: PanelRowsBuild {
        QuantizedKernelDispatch.useAVX512VL ? .avx512 : QuantizedKernelDispatch.useAVX2 ? .avx2 : .portable
    }

    /// Y[m, 0..<width] (= or +=) X[m, :] · panelᵀ for every m in rows (X's leading dimension k).
    @inline(__always)
    func run(_ panel: UnsafePointer<Float>, width: Int, k: Int, x: UnsafePointer<Float>, rows: UnsafeBufferPointer<Int>,
             y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        let a: Int32 = accumulate ? 1 : 0
        switch self {
        case .avx512: ck_panel_rows_avx512(panel, width, k, x, k, rows.baseAddress, rows.count, y, ldy, a)
        case .avx2: ck_panel_rows_avx2(panel, width, k, x, k, rows.baseAddress, rows.count, y, ldy, a)
        case .portable: ck_panel_rows_portable(panel, width, k, x, k, rows.baseAddress, rows.count, y, ldy, a)
        }
    }
}
