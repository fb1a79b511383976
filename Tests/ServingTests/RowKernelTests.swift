import Kernels
import Model
import Quantization
import TestSupport
import XCTest

/// `forwardRows` (batched decoding) of the quantized formats: every row bit-identical to the one-row
/// forward of that row alone, for any number of rows, and close to the plain reference twin.
final class RowKernelTests: XCTestCase {
    /// Fast and reference differ only in summation order (SIMD lanes) over K <= 192 terms of order one.
    static let fastVsReferenceRelTolerance: Float = 1e-5

    static func randomBlocks(n: Int, k: Int, blockBytes: Int, scales: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        var out: [UInt8] = []
        for _ in 0..<(n * k / 32) {
            for _ in 0..<scales {
                let h = Half.fromFloat(Float(rng.nextUnitFloat() * 2 - 1) * 0.02)
                out += [UInt8(h & 0xFF), UInt8(h >> 8)]
            }
            for _ in 0..<(blockBytes - 2 * scales) { out.append(UInt8(truncatingIfNeeded: rng.next())) }
        }
        return out
    }

    static func floats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnitFloat() * 2 - 1) }
    }

    func check(_ w: LinearWeight, reference: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Bool) -> Void,
               file: StaticString = #filePath, line: UInt = #line) {
        let n = w.outFeatures, k = w.inFeatures
        for rows in 1...17 {
            let x = Self.floats(rows * k, seed: UInt64(rows * 31 + n))
            let y0 = Self.floats(rows * n, seed: UInt64(rows * 17 + k))
            for accumulate in [false, true] {
                var batched = y0, single = y0, plain = y0
                w.forwardRows(x, rows: rows, into: &batched, accumulate: accumulate)
                x.withUnsafeBufferPointer { xp in
                    single.withUnsafeMutableBufferPointer { yp in
                        for r in 0..<rows {
                            w.forward(xp.baseAddress! + r * k, tokens: 1, into: yp.baseAddress! + r * n, accumulate: accumulate)
                        }
                    }
                }
                XCTAssertEqual(batched.map(\.bitPattern), single.map(\.bitPattern),
                               "N=\(n) K=\(k) rows=\(rows) accumulate=\(accumulate): a row depends on its neighbours", file: file, line: line)
                let int8 = (w as? Q4_1Weight)?.decodesWithInt8Activations ?? (w as? Q8_0Weight)?.decodesWithInt8Activations ?? false
                if int8 {
                    // int8 activations: every path is the portable integer kernel's bits (its bound against
                    // the exact product is Q8ActivationTests').
                    let savedAVX2 = QuantizedKernelDispatch.useAVX2
                    QuantizedKernelDispatch.useAVX2 = false
                    w.forwardRows(x, rows: rows, into: &plain, accumulate: accumulate)
                    QuantizedKernelDispatch.useAVX2 = savedAVX2
                    XCTAssertEqual(batched.map(\.bitPattern), plain.map(\.bitPattern), "N=\(n) K=\(k) rows=\(rows) q8", file: file, line: line)
                    continue
                }
                reference(x, rows, &plain, accumulate)
                var worst: Float = 0
                for i in 0..<batched.count { worst = max(worst, abs(batched[i] - plain[i]) / max(1, abs(plain[i]))) }
                // Beyond 192 terms, the bound for two orders of a random product (Tolerances.swift).
                let tolerance = k <= 192 ? Self.fastVsReferenceRelTolerance : Float(FP32.randomProduct(terms: k))
                XCTAssertLessThanOrEqual(worst, tolerance, "N=\(n) K=\(k) rows=\(rows)", file: file, line: line)
            }
        }
    }

    /// Runs `body` with the portable Swift kernels and, where the CPU has them, with the AVX2 kernels
    /// and their AVX-512VL build.
    /// Each path under every decode-activations setting (`DecodeActivations`: f32, q8, q8-f32head, q8-all).
    func forEachKernelPath(_ body: () throws -> Void) rethrows {
        let saved = (QuantizedKernelDispatch.useAVX2, QuantizedKernelDispatch.useAVX512VL, QuantizedKernelDispatch.useVNNI,
                     QuantizedKernelDispatch.decodeActivations)
        defer {
            QuantizedKernelDispatch.useAVX2 = saved.0; QuantizedKernelDispatch.useAVX512VL = saved.1
            QuantizedKernelDispatch.useVNNI = saved.2; QuantizedKernelDispatch.decodeActivations = saved.3
        }
        var paths = [(false, false)]
        if QuantizedKernelDispatch.cpuHasAVX2 { paths.append((true, false)) }
        if QuantizedKernelDispatch.cpuHasAVX512VL { paths.append((true, true)) }
        for activations in DecodeActivations.allCases {
            QuantizedKernelDispatch.decodeActivations = activations
            for (avx2, avx512) in paths {
                QuantizedKernelDispatch.useAVX2 = avx2
                QuantizedKernelDispatch.useAVX512VL = avx512
                QuantizedKernelDispatch.useVNNI = avx512
                try body()
            }
        }
    }

    /// The AVX-512VL build runs the AVX2 kernels' operations in the same order (more registers, larger
    /// tiles): the same bits for every row count, K not a multiple of 256, odd N.
    func testAVX512VLBuildIsTheAVX2KernelsBitForBit() throws {
        try XCTSkipUnless(QuantizedKernelDispatch.cpuHasAVX512VL, "this CPU has no AVX-512VL")
        let saved = (QuantizedKernelDispatch.useAVX2, QuantizedKernelDispatch.useAVX512VL, QuantizedKernelDispatch.decodeActivations)
        defer {
            QuantizedKernelDispatch.useAVX2 = saved.0; QuantizedKernelDispatch.useAVX512VL = saved.1
            QuantizedKernelDispatch.decodeActivations = saved.2
        }
        QuantizedKernelDispatch.useAVX2 = true
        QuantizedKernelDispatch.decodeActivations = .f32   // the fp32 kernels' builds (the int8 ones: Q8ActivationTests)
        for (n, k) in [(77, 1504), (33, 96), (1, 32)] {
            let weights: [LinearWeight] = [
                try Q4_1Weight(outFeatures: n, inFeatures: k,
                               blocks: Self.randomBlocks(n: n, k: k, blockBytes: Q4_1Weight.blockBytes, scales: 2, seed: UInt64(n + k))),
                try Q8_0Weight(outFeatures: n, inFeatures: k,
                               blocks: Self.randomBlocks(n: n, k: k, blockBytes: 34, scales: 1, seed: UInt64(n * k))),
            ]
            for w in weights {
                for rows in 1...17 {
                    let x = Self.floats(rows * k, seed: UInt64(rows * 31 + n))
                    for accumulate in [false, true] {
                        var outs: [[UInt32]] = []
                        for avx512 in [false, true] {
                            QuantizedKernelDispatch.useAVX512VL = avx512
                            var y = Self.floats(rows * n, seed: UInt64(rows * 17 + k))
                            w.forwardRows(x, rows: rows, into: &y, accumulate: accumulate)
                            outs.append(y.map(\.bitPattern))
                        }
                        XCTAssertEqual(outs[0], outs[1], "\(type(of: w)) N=\(n) K=\(k) rows=\(rows) accumulate=\(accumulate)")
                    }
                }
            }
        }
    }

    func testQ4_1RowsAreTheOneRowGEMVBitForBit() throws {
        try forEachKernelPath {
            for (n, k) in [(77, 192), (5, 96), (3, 32), (64, 64), (130, 96), (9, 1504)] {
                let w = try Q4_1Weight(outFeatures: n, inFeatures: k,
                                       blocks: Self.randomBlocks(n: n, k: k, blockBytes: Q4_1Weight.blockBytes, scales: 2, seed: UInt64(n + k)))
                check(w) { w.forwardReference($0, tokens: $1, into: $2, accumulate: $3) }
            }
        }
    }

    func testQ8_0RowsAreTheOneRowGEMVBitForBit() throws {
        try forEachKernelPath {
            for (n, k) in [(77, 192), (5, 96), (3, 32), (64, 64), (130, 96), (9, 1504)] {
                let w = try Q8_0Weight(outFeatures: n, inFeatures: k,
                                       blocks: Self.randomBlocks(n: n, k: k, blockBytes: 34, scales: 1, seed: UInt64(n * k)))
                check(w) { w.forwardReference($0, tokens: $1, into: $2, accumulate: $3) }
            }
        }
    }

    func testDenseRowsUseTheOneRowPath() throws {
        let n = 7, k = 13
        let w = DenseWeight(outFeatures: n, inFeatures: k, data: Self.floats(n * k, seed: 3))
        check(w) { x, t, y, acc in
            // Plain triple loop.
            for r in 0..<t {
                for o in 0..<n {
                    var s: Float = 0
                    for i in 0..<k { s += x[r * k + i] * w.data[o * k + i] }
                    y[r * n + o] = acc ? y[r * n + o] + s : s
                }
            }
        }
    }

    /// `forwardChunks` (several prompts' prefill chunks in one step): every chunk bit-identical to
    /// `forward` of that chunk alone in buffers of its own, whatever chunks come with it; shapes
    /// with one tile and with several (K = 4096: 64-row tiles), a one-row chunk among them.
    func checkChunks(_ w: LinearWeight, file: StaticString = #filePath, line: UInt = #line) {
        let n = w.outFeatures, k = w.inFeatures
        let chunks = [0..<5, 5..<6, 6..<23, 23..<25]
        let rows = chunks.last!.upperBound
        let x = Self.floats(rows * k, seed: UInt64(n + 7 * k))
        let y0 = Self.floats(rows * n, seed: UInt64(3 * n + k))
        for accumulate in [false, true] {
            var together = y0
            w.forwardChunks(x, chunks: chunks, into: &together, accumulate: accumulate)
            for c in chunks {
                var alone = Array(y0[(c.lowerBound * n)..<(c.upperBound * n)])
                let xc = Array(x[(c.lowerBound * k)..<(c.upperBound * k)])
                w.forward(xc, tokens: c.count, into: &alone, accumulate: accumulate)
                XCTAssertEqual(Array(together[(c.lowerBound * n)..<(c.upperBound * n)]).map(\.bitPattern), alone.map(\.bitPattern),
                               "N=\(n) K=\(k) chunk \(c) accumulate=\(accumulate): a chunk depends on the others", file: file, line: line)
            }
        }
    }

    func testChunksAreEachChunksOwnForwardBitForBit() throws {
        try forEachKernelPath {
            for (n, k) in [(77, 192), (130, 4096)] {
                checkChunks(try Q4_1Weight(outFeatures: n, inFeatures: k,
                                           blocks: Self.randomBlocks(n: n, k: k, blockBytes: Q4_1Weight.blockBytes, scales: 2, seed: UInt64(n + k))))
                checkChunks(try Q8_0Weight(outFeatures: n, inFeatures: k,
                                           blocks: Self.randomBlocks(n: n, k: k, blockBytes: 34, scales: 1, seed: UInt64(n * k))))
            }
        }
        checkChunks(DenseWeight(outFeatures: 7, inFeatures: 13, data: Self.floats(7 * 13, seed: 3)))
    }
}
