import CKernels
import Kernels
import Quantization
import TestSupport
import XCTest

/// The prompt-row panel kernels (`ck_panel_pack`, `ck_panel_rows_*`, panel_rows.c) and their use in the quantized
/// weights' T > 1 forward (`QuantizedTiles.forwardChunksConcurrently`): the AVX-512F, AVX2 and portable builds
/// bit for bit, an output's bits independent of the rows beside it, and the result against a Double reference
/// within the bound of its fma chain.
final class PanelRowsTests: XCTestCase {
    typealias Build = (UnsafePointer<Float>?, Int, Int, UnsafePointer<Float>?, Int, UnsafePointer<Int>?, Int,
                       UnsafeMutablePointer<Float>?, Int, Int32) -> Void

    /// The builds this CPU can run, the portable twin first.
    static var builds: [(String, Build)] {
        var out: [(String, Build)] = [("portable", ck_panel_rows_portable)]
        if QuantizedKernelDispatch.cpuHasAVX2 { out.append(("avx2", ck_panel_rows_avx2)) }
        if QuantizedKernelDispatch.cpuHasAVX512VL { out.append(("avx512", ck_panel_rows_avx512)) }
        return out
    }

    /// Y[m, 0..<width] for m in `rows` (Y [*, ldy], prefilled with y0) through one build: `tile` [width, K]
    /// row-major packed into a panel first.
    static func run(_ build: Build, tile: [Float], width: Int, k: Int, x: [Float], rows: [Int], y0: [Float], ldy: Int,
                    accumulate: Bool) -> [Float] {
        var panel = [Float](repeating: .nan, count: k * Int(CK_PANEL_WIDTH))
        ck_panel_pack(tile, width, k, &panel)
        var y = y0
        build(panel, width, k, x, k, rows, rows.count, &y, ldy, accumulate ? 1 : 0)
        return y
    }

    /// Row counts 1...17, 24, 33, 250; widths 32 (a full panel) and 1, 5, 17, 31; K not a multiple of 16 (and 16,
    /// 576): every build writes the portable twin's bits, and nothing outside its rows and width.
    func testBuildsAreBitIdenticalOverShapes() {
        var rng = TestRNG(seed: 11)
        let rowCounts = Array(1...17) + [24, 33, 250]
        for k in [1, 13, 16, 100, 576] {
            for width in [32, 31, 17, 5, 1] {
                let tile = rng.uniform(width * k)
                for count in rowCounts {
                    // Rows out of order and with a gap, as the chunks of a step are: every other row of 2 * count.
                    let rows = (0..<count).map { 2 * (count - 1 - $0) }
                    let x = rng.uniform(2 * count * k)
                    let ldy = width + 3
                    let y0 = rng.uniform(2 * count * ldy)
                    for accumulate in [false, true] {
                        let want = Self.run(ck_panel_rows_portable, tile: tile, width: width, k: k, x: x, rows: rows, y0: y0,
                                            ldy: ldy, accumulate: accumulate)
                        for (name, build) in Self.builds.dropFirst() {
                            let got = Self.run(build, tile: tile, width: width, k: k, x: x, rows: rows, y0: y0, ldy: ldy,
                                               accumulate: accumulate)
                            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                           "\(name) K=\(k) width=\(width) rows=\(count) accumulate=\(accumulate)")
                        }
                        // Untouched: the skipped rows and the columns past width.
                        var untouched = true
                        for r in 0..<(2 * count) {
                            for c in 0..<ldy where r % 2 == 1 || c >= width {
                                untouched = untouched && want[r * ldy + c].bitPattern == y0[r * ldy + c].bitPattern
                            }
                        }
                        XCTAssertTrue(untouched, "K=\(k) width=\(width) rows=\(count): written outside its rows and width")
                    }
                }
            }
        }
    }

    /// A row's outputs are the same bits alone, first, last, or anywhere in blocks of 8, 6, 4, 3 or 1 rows, in
    /// every build: the neighbours vary, the row does not.
    func testAnOutputDoesNotDependOnTheRowsBesideIt() {
        var rng = TestRNG(seed: 12)
        let k = 77, width = 29, total = 40
        let tile = rng.uniform(width * k), x = rng.uniform(total * k), y0 = rng.uniform(total * width)
        let probe = 21
        for (name, build) in Self.builds {
            let alone = Self.run(build, tile: tile, width: width, k: k, x: x, rows: [probe], y0: y0, ldy: width, accumulate: true)
            let want = Array(alone[(probe * width)..<((probe + 1) * width)])
            for neighbours in [1, 2, 3, 5, 7, 8, 11, 13, 19, 39] {
                for position in [0, neighbours / 2, neighbours] {
                    var others = (0..<total).filter { $0 != probe }
                    for i in 0..<others.count { others.swapAt(i, i + rng.index(below: others.count - i)) }
                    var rows = Array(others.prefix(neighbours))
                    rows.insert(probe, at: position)
                    let got = Self.run(build, tile: tile, width: width, k: k, x: x, rows: rows, y0: y0, ldy: width, accumulate: true)
                    XCTAssertEqual(Array(got[(probe * width)..<((probe + 1) * width)]).map(\.bitPattern), want.map(\.bitPattern),
                                   "\(name): \(neighbours) neighbours, the row at \(position)")
                }
            }
        }
    }

    /// Against Double: one chain of K fmas (K roundings) then, accumulating, one add, so
    /// |y - exact| <= γ_(K+1) · (|y0| + Σ_k |x_k w_k|) (Tolerances.swift's γ).
    func testMatchesADoubleReferenceWithinTheChainsBound() {
        var rng = TestRNG(seed: 13)
        for (k, width, count) in [(13, 32, 9), (576, 17, 20), (1536, 32, 3)] {
            let tile = rng.uniform(width * k), x = rng.uniform(count * k, scale: 4), y0 = rng.uniform(count * width)
            for accumulate in [false, true] {
                for (name, build) in Self.builds {
                    let y = Self.run(build, tile: tile, width: width, k: k, x: x, rows: Array(0..<count), y0: y0, ldy: width,
                                     accumulate: accumulate)
                    for m in 0..<count {
                        for i in 0..<width {
                            var exact = accumulate ? Double(y0[m * width + i]) : 0, magnitude = abs(exact)
                            for kk in 0..<k {
                                let p = Double(x[m * k + kk]) * Double(tile[i * k + kk])
                                exact += p
                                magnitude += abs(p)
                            }
                            let bound = FP32.gamma(k + 1) * magnitude
                            XCTAssertLessThanOrEqual(abs(Double(y[m * width + i]) - exact), bound, "\(name) K=\(k) (\(m), \(i))")
                        }
                    }
                }
            }
        }
    }

    /// Through a Q4_1 weight (several tiles: N = 300, K = 1024): a chunk's rows are the same bits whatever chunks
    /// come with it in `forwardChunks` (none, small ones, one larger than `panelRowsLimit` that takes sgemm), the
    /// same as `forward` of the chunk alone, and on every build; and a chunk of at most 256 rows is the panels'
    /// chain over the dequantized rows (the portable kernel on `dequantizeRows`' output).
    func testChunksThroughAWeightDependOnlyOnTheirOwnRows() throws {
        let n = 300, k = 1024
        var rng = TestRNG(seed: 14)
        var blocks: [UInt8] = []
        for _ in 0..<(n * k / 32) {
            let d = Half.fromFloat(rng.uniform(scale: 0.02)), m = Half.fromFloat(rng.uniform(scale: 0.1))
            blocks += [UInt8(d & 0xFF), UInt8(d >> 8), UInt8(m & 0xFF), UInt8(m >> 8)]
            for _ in 0..<16 { blocks.append(UInt8(truncatingIfNeeded: rng.next() >> 32)) }
        }
        let w = try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: blocks)
        var dense = [Float](repeating: 0, count: n * k)
        w.dequantizeRows(0, n, into: &dense)
        let total = 300
        let x = rng.uniform(total * k)
        let probe = 7..<27  // 20 rows, a serve-sized prompt chunk
        let saved = (QuantizedKernelDispatch.useAVX2, QuantizedKernelDispatch.useAVX512VL)
        defer { QuantizedKernelDispatch.useAVX2 = saved.0; QuantizedKernelDispatch.useAVX512VL = saved.1 }

        // The expected bits: each output's chain over the dequantized weight row (portable, panel by panel).
        var want = [Float](repeating: 0, count: probe.count * n)
        let xp = Array(x[(probe.lowerBound * k)..<(probe.upperBound * k)])
        for p0 in stride(from: 0, to: n, by: Int(CK_PANEL_WIDTH)) {
            let width = min(Int(CK_PANEL_WIDTH), n - p0)
            let part = Self.run(ck_panel_rows_portable, tile: Array(dense[(p0 * k)..<((p0 + width) * k)]), width: width, k: k,
                                x: xp, rows: Array(0..<probe.count), y0: [Float](repeating: 0, count: probe.count * width),
                                ldy: width, accumulate: false)
            for m in 0..<probe.count { for i in 0..<width { want[m * n + p0 + i] = part[m * width + i] } }
        }

        var paths = [(false, false)]
        if QuantizedKernelDispatch.cpuHasAVX2 { paths.append((true, false)) }
        if QuantizedKernelDispatch.cpuHasAVX512VL { paths.append((true, true)) }
        for (avx2, avx512) in paths {
            QuantizedKernelDispatch.useAVX2 = avx2
            QuantizedKernelDispatch.useAVX512VL = avx512
            var alone = [Float](repeating: 0, count: probe.count * n)
            w.forward(xp, tokens: probe.count, into: &alone, accumulate: false)
            XCTAssertEqual(alone.map(\.bitPattern), want.map(\.bitPattern), "forward, avx2=\(avx2) avx512=\(avx512)")
            // The probe beside: nothing; small chunks; a one-row chunk; a 261-row chunk (sgemm).
            for neighbours in [[probe], [0..<7, probe, 27..<40], [0..<1, probe, 27..<28, 28..<33], [probe, 27..<288]] {
                var y = [Float](repeating: .nan, count: total * n)
                w.forwardChunks(x, chunks: neighbours, into: &y, accumulate: false)
                XCTAssertEqual(Array(y[(probe.lowerBound * n)..<(probe.upperBound * n)]).map(\.bitPattern), want.map(\.bitPattern),
                               "chunks \(neighbours), avx2=\(avx2) avx512=\(avx512)")
            }
        }
    }
}
