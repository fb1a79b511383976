import CKernels
import Kernels
import Quantization
import TestSupport
import XCTest

/// int8 activations for decode rows: the quantizer's definition and layout (groups of 8 rows, zero padding)
/// and its AVX2 build against the portable twin, the integer-dot kernels' AVX2, VNNI and portable builds bit
/// for bit at odd sizes (every tile shape: T = 1...17, 24, 33 takes tiles of 1 and 2 inputs and wide tiles of one
/// and two quads, or row-lane tiles of 2...8 inputs, with whole and partial groups of 8; N = 1, 7, 9, 14, 15, 17,
/// 33, 77 leaves partial runs of weight rows), each row the same bits alone (quantized alone) or in any batch, row
/// range or thread count, and every output within the derived bound (`Q8Decode.dotBound`) of the exact
/// product of the dequantized weights with the unquantized input.
final class Q8ActivationTests: XCTestCase {
    /// The (useAVX2, useVNNI) paths this CPU has, the portable one first.
    static var dispatchPaths: [(Bool, Bool)] {
        var paths = [(false, false)]
        if QuantizedKernelDispatch.cpuHasAVX2 { paths.append((true, false)) }
        if QuantizedKernelDispatch.cpuHasVNNI { paths.append((true, true)) }
        return paths
    }

    static func floats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = TestRNG(seed: seed)
        return rng.uniform(n, scale: scale)
    }

    /// Random blocks with small finite scales (and mins for Q4_1) and random quants.
    static func blocks(_ format: Q8ActivationRows.Format, n: Int, k: Int, seed: UInt64) -> [UInt8] {
        var rng = TestRNG(seed: seed)
        let scales = format == .q4_1 ? 2 : 1, bytes = format == .q4_1 ? 20 : 34
        var out: [UInt8] = []
        for _ in 0..<(n * k / 32) {
            for _ in 0..<scales {
                let h = Half.fromFloat(rng.uniform(scale: 0.05))
                out += [UInt8(h & 0xFF), UInt8(h >> 8)]
            }
            for _ in 0..<(bytes - 2 * scales) { out.append(UInt8(truncatingIfNeeded: rng.next())) }
        }
        return out
    }

    struct Quantized { var q: [Int8]; var d: [Float]; var s: [Float] }

    /// Rows rounded up to the quantizer's groups of 8.
    static func padded(_ T: Int) -> Int { (T + 7) / 8 * 8 }

    /// Where row t's block b keeps d and s (CKernels.h): the 8 rows of a group side by side per block.
    static func scaleIndex(_ t: Int, _ b: Int, bpr: Int) -> Int { ((t / 8) * bpr + b) * 8 + t % 8 }

    static func quantize(_ x: [Float], rows T: Int, k: Int, simd: Bool, digits: Int = 1) -> Quantized {
        // NaN fill: whatever the quantizer leaves unwritten shows up in the comparisons.
        let tp = padded(T)
        var out = Quantized(q: [Int8](repeating: 99, count: tp * k * digits), d: [Float](repeating: .nan, count: tp * k / 32),
                            s: [Float](repeating: .nan, count: tp * k / 32))
        switch (digits, simd) {
        case (1, true): ck_q8_quantize_rows(x, T, k, &out.q, &out.d, &out.s)
        case (1, false): ck_q8_quantize_rows_ref(x, T, k, &out.q, &out.d, &out.s)
        case (_, true): ck_q8x2_quantize_rows(x, T, k, &out.q, &out.d, &out.s)
        default: ck_q8x2_quantize_rows_ref(x, T, k, &out.q, &out.d, &out.s)
        }
        return out
    }

    /// Input element (t, i)'s quantized value in units of its block's d (one digit: q; two: 256·q_hi + q_lo).
    static func level(_ a: Quantized, _ t: Int, _ i: Int, k: Int, digits: Int) -> Int {
        if digits == 1 { return Int(a.q[t * k + i]) }
        let at = (t * k + (i / 32) * 32) * 2 + i % 32
        return 256 * Int(a.q[at]) + Int(a.q[at + 32])
    }

    /// Inputs at the two-digit quantizer's edges, block by block (K = 32 * 6): a block whose amax is 127 (unit
    /// 1, e = 2⁻⁸) with values rounding to ±127, exact ties of the high digit and residuals whose low digit is
    /// clamped at ±127 (x = 2.5: q_hi 2, r/e = 128; 3.5: q_hi 4, r/e = -128; 3.4995: r/e ≈ 127.87); zeros; huge
    /// (amax 1e30) and tiny blocks (amax 1e-40: e subnormal; 1e-44: e = 0); one value only.
    static func edgeInputs(rows T: Int, seed: UInt64) -> [Float] {
        let k = 192
        var x = floats(T * k, seed: seed, scale: 3)
        let edge: [Float] = [127, -127, 126.5, -126.5, 2.5, 3.5, -3.5, 3.4995, -0.5, 0.5, 1.0 / 512, 0]
        for t in 0..<T {
            let r = t * k
            for i in 0..<32 { x[r + i] = edge[(i + t) % edge.count] }
            x[r] = t % 2 == 0 ? 127 : -127
            for i in 32..<64 { x[r + i] = 0 }
            for i in 64..<96 { x[r + i] *= 1e29 }
            for i in 96..<128 { x[r + i] *= 3e-41 }
            for i in 128..<160 { x[r + i] *= 3e-45 }
            for i in 160..<192 { x[r + i] = i == 170 + t % 5 ? -2.5 : 0 }
        }
        return x
    }

    /// The two-digit quantizer computed here independently from its definition (CKernels.h) for one element.
    static func twoDigits(_ v: Float, e: Float) -> (Int8, Int8) {
        if e == 0 { return (0, 0) }
        let unit = e * 256
        let hi = min(127, max(-127, v / unit)).rounded(.toNearestOrEven)
        let r = v.addingProduct(-unit, hi)   // one fma
        let lo = min(127, max(-127, r / e)).rounded(.toNearestOrEven)
        return (Int8(hi), Int8(lo))
    }

    func testTwoDigitQuantizerFollowsItsDefinitionAtItsEdgesAndSIMDIsThePortableTwin() throws {
        for (k, edges) in [(32, false), (192, true), (608, false)] {
            for T in [1, 3, 17] {
                let x = edges ? Self.edgeInputs(rows: T, seed: UInt64(T)) : Self.inputs(rows: T, k: k, seed: UInt64(k * 5 + T))
                let ref = Self.quantize(x, rows: T, k: k, simd: false, digits: 2)
                let bpr = k / 32
                for t in T..<Self.padded(T) {
                    XCTAssertTrue(ref.q[(t * 2 * k)..<((t + 1) * 2 * k)].allSatisfy { $0 == 0 }, "K=\(k) padding row \(t): q")
                    for b in 0..<bpr {
                        let at = Self.scaleIndex(t, b, bpr: bpr)
                        XCTAssertEqual([ref.d[at].bitPattern, ref.s[at].bitPattern], [0, 0], "K=\(k) padding row \(t) block \(b)")
                    }
                }
                for t in 0..<T {
                    for b in 0..<bpr {
                        let xb = Array(x[(t * k + b * 32)..<(t * k + b * 32 + 32)])
                        let e = xb.map(abs).max()! / 32512
                        let at = Self.scaleIndex(t, b, bpr: bpr)
                        XCTAssertEqual(ref.d[at].bitPattern, e.bitPattern, "K=\(k) row \(t) block \(b): e")
                        var sum = 0
                        for (j, v) in xb.enumerated() {
                            let (hi, lo) = Self.twoDigits(v, e: e)
                            let got = (ref.q[(t * k + b * 32) * 2 + j], ref.q[(t * k + b * 32) * 2 + 32 + j])
                            XCTAssertTrue(got == (hi, lo), "K=\(k) row \(t) block \(b) element \(j): digits of \(v) are \(got), not \((hi, lo))")
                            sum += 256 * Int(got.0) + Int(got.1)
                            // The representation bound (CKernels.h), for normal e.
                            if e >= Float.leastNormalMagnitude {
                                let err = abs(Double(v) - Double(e) * Double(256 * Int(got.0) + Int(got.1)))
                                XCTAssertLessThanOrEqual(err, Double(e) * (1 + 0x1p-8), "K=\(k) row \(t) block \(b) element \(j): \(v)")
                            }
                        }
                        XCTAssertEqual(ref.s[at].bitPattern, (e * Float(sum)).bitPattern, "K=\(k) row \(t) block \(b): s")
                    }
                }
                if edges {
                    // Row 0's first block (unit 1, e = 2⁻⁸): the cases the doc comment names.
                    let d0 = Array(zip(ref.q[0..<12], ref.q[32..<44]).map { [Int($0.0), Int($0.1)] })
                    XCTAssertEqual(d0, [[127, 0], [-127, 0], [126, 127], [-126, -127], [2, 127], [4, -127], [-4, 127],
                                        [3, 127], [0, -127], [0, 127], [0, 0], [0, 0]], "edge digits")
                    XCTAssertTrue(ref.q[(128 * 2)..<(160 * 2)].allSatisfy { $0 == 0 }, "e = 0 block: zeros")
                    XCTAssertNotEqual(ref.d[Self.scaleIndex(0, 3, bpr: bpr)], 0, "the tiny block's e is subnormal, not 0")
                }
                XCTAssertTrue(ref.q.allSatisfy { $0 != -128 }, "no digit is -128")
                if QuantizedKernelDispatch.cpuHasAVX2 {
                    let simd = Self.quantize(x, rows: T, k: k, simd: true, digits: 2)
                    XCTAssertEqual(simd.q, ref.q, "K=\(k) T=\(T)")
                    XCTAssertEqual(simd.d.map(\.bitPattern), ref.d.map(\.bitPattern), "K=\(k) T=\(T)")
                    XCTAssertEqual(simd.s.map(\.bitPattern), ref.s.map(\.bitPattern), "K=\(k) T=\(T)")
                }
            }
        }
    }

    /// Inputs with the cases that matter: a block of zeros, a block with one value, ties at ±0.5·d.
    static func inputs(rows T: Int, k: Int, seed: UInt64) -> [Float] {
        var x = floats(T * k, seed: seed, scale: 3)
        if k >= 96 {
            for i in 32..<64 { x[i] = 0 }                      // amax 0: d = 0, q = 0
            for i in 64..<96 { x[i] = i == 70 ? -2.5 : 0 }      // one value: q = -127
        }
        if k >= 128 {
            // amax 127 -> d = 1: x = 0.5, 1.5, 2.5, -0.5 are exact ties, rounded to even.
            for i in 96..<128 { x[i] = [0.5, 1.5, 2.5, -0.5, 127, -3.5][i % 6] }
        }
        return x
    }

    func testQuantizerFollowsItsDefinitionAndSIMDIsThePortableTwin() throws {
        for k in [32, 128, 224, 608] {
            for T in [1, 3, 17] {
                let x = Self.inputs(rows: T, k: k, seed: UInt64(k * 7 + T))
                let ref = Self.quantize(x, rows: T, k: k, simd: false)
                // The definition, computed here independently.
                let bpr = k / 32
                for t in T..<Self.padded(T) {
                    XCTAssertTrue(ref.q[(t * k)..<((t + 1) * k)].allSatisfy { $0 == 0 }, "K=\(k) padding row \(t): q")
                    for b in 0..<bpr {
                        let at = Self.scaleIndex(t, b, bpr: bpr)
                        XCTAssertEqual([ref.d[at].bitPattern, ref.s[at].bitPattern], [0, 0], "K=\(k) padding row \(t) block \(b)")
                    }
                }
                for t in 0..<T {
                    for b in 0..<bpr {
                        let xb = x[(t * k + b * 32)..<(t * k + b * 32 + 32)]
                        let d = xb.map(abs).max()! / 127
                        let at = Self.scaleIndex(t, b, bpr: bpr)
                        XCTAssertEqual(ref.d[at].bitPattern, d.bitPattern, "K=\(k) row \(t) block \(b): d")
                        for (j, v) in xb.enumerated() {
                            let expected = d == 0 ? 0 : Int8(min(127, max(-127, v / d)).rounded(.toNearestOrEven))
                            XCTAssertEqual(ref.q[t * k + b * 32 + j], expected, "K=\(k) row \(t) block \(b) element \(j): q of \(v)")
                        }
                        let qs = (0..<32).map { Int(ref.q[t * k + b * 32 + $0]) }.reduce(0, +)
                        XCTAssertEqual(ref.s[at].bitPattern, (d * Float(qs)).bitPattern, "K=\(k) row \(t) block \(b): s = d * sum q")
                    }
                }
                if k >= 128 {
                    XCTAssertEqual(Array(ref.q[96..<102]), [0, 2, 2, 0, 127, -4], "ties round to even")
                    XCTAssertEqual(ref.q[70], -127)
                }
                XCTAssertTrue(ref.q.allSatisfy { $0 != -128 }, "q never -128")
                if QuantizedKernelDispatch.cpuHasAVX2 {
                    let simd = Self.quantize(x, rows: T, k: k, simd: true)
                    XCTAssertEqual(simd.q, ref.q, "K=\(k) T=\(T)")
                    XCTAssertEqual(simd.d.map(\.bitPattern), ref.d.map(\.bitPattern), "K=\(k) T=\(T)")
                    XCTAssertEqual(simd.s.map(\.bitPattern), ref.s.map(\.bitPattern), "K=\(k) T=\(T)")
                }
            }
        }
    }

    /// The builds this CPU runs for `format`: portable first.
    static func builds(_ format: Q8ActivationRows.Format, digits: Int = 1) -> [(String, ck_q8_rows_fn)] {
        let all: [(String, ck_q8_rows_fn)]
        switch (format, digits) {
        case (.q4_1, 1): all = [("portable", ck_q4_1_q8_rows_ref), ("avx2", ck_q4_1_q8_rows), ("vnni", ck_q4_1_q8_rows_vnni)]
        case (.q8_0, 1): all = [("portable", ck_q8_0_q8_rows_ref), ("avx2", ck_q8_0_q8_rows), ("vnni", ck_q8_0_q8_rows_vnni)]
        case (.q4_1, _): all = [("portable", ck_q4_1_q8x2_rows_ref), ("avx2", ck_q4_1_q8x2_rows), ("vnni", ck_q4_1_q8x2_rows_vnni)]
        case (.q8_0, _): all = [("portable", ck_q8_0_q8x2_rows_ref), ("avx2", ck_q8_0_q8x2_rows), ("vnni", ck_q8_0_q8x2_rows_vnni)]
        }
        var out = [all[0]]
        if QuantizedKernelDispatch.cpuHasAVX2 { out.append(all[1]) }
        if QuantizedKernelDispatch.cpuHasVNNI { out.append(all[2]) }
        return out
    }

    func run(_ kernel: ck_q8_rows_fn, _ w: [UInt8], bpr: Int, rows r: Range<Int>, _ a: Quantized, rows T: Int, n: Int,
             y0: [Float], accumulate: Bool) -> [Float] {
        var y = y0
        kernel(w, bpr, r.lowerBound, r.upperBound, a.q, a.d, a.s, T, &y, n, accumulate ? 1 : 0)
        return y
    }

    func testIntegerDotBuildsAreBitIdenticalBatchInvariantAndWithinTheDerivedBound() throws {
        try checkIntegerDotBuilds(digits: 1)
    }

    /// The same for two-digit inputs (the output head's under the default), plus the digit edges (`edgeInputs`:
    /// huge and tiny blocks, clamped low digits) for bit identity and batch invariance.
    func testTwoDigitIntegerDotBuildsAreBitIdenticalBatchInvariantAndWithinTheDerivedBound() throws {
        try checkIntegerDotBuilds(digits: 2)
    }

    /// Wide Q8_0 weights, where the VNNI build's per-call corrections buffer (8192 ints) holds fewer input groups a
    /// pass (K = 9,600: 3 groups of 8, so T = 33 takes two passes) or none (K = 33,280: 8-output tiles instead):
    /// every build gives the portable twin's bits, one digit and two.
    func testWideQ8_0WeightsTakeFewerGroupsOrTheEightOutputTilesWithTheSameBits() throws {
        for digits in [1, 2] {
            let builds = Self.builds(.q8_0, digits: digits)
            for (n, k) in [(9, 9_600), (9, 33_280)] {
                let bpr = k / 32
                let w = Self.blocks(.q8_0, n: n, k: k, seed: UInt64(n * 7 + k))
                for T in [1, 2, 3, 9, 33] {
                    let x = Self.inputs(rows: T, k: k, seed: UInt64(T * 13 + k))
                    let a = Self.quantize(x, rows: T, k: k, simd: false, digits: digits)
                    let y0 = Self.floats(T * n, seed: UInt64(T + n))
                    let reference = run(builds[0].1, w, bpr: bpr, rows: 0..<n, a, rows: T, n: n, y0: y0, accumulate: true)
                    for (name, kernel) in builds.dropFirst() {
                        let y = run(kernel, w, bpr: bpr, rows: 0..<n, a, rows: T, n: n, y0: y0, accumulate: true)
                        XCTAssertEqual(y.map(\.bitPattern), reference.map(\.bitPattern), "Q8_0 \(name) digits=\(digits) N=\(n) K=\(k) T=\(T)")
                    }
                }
            }
        }
    }

    func checkIntegerDotBuilds(digits: Int) throws {
        for format in [Q8ActivationRows.Format.q4_1, .q8_0] {
            let builds = Self.builds(format, digits: digits)
            // N = 9, 15, 17: a whole run of 8 weight rows then a partial one (1, 7 or 1 rows), as the VNNI build's
            // row-lane tiles see them.
            let shapes = [(1, 32), (7, 224), (14, 96), (33, 608), (77, 1376), (9, 64), (15, 160), (17, 96)]
                + (digits == 2 ? [(9, -192)] : [])
            for (n, kk) in shapes {
                let k = abs(kk), edges = kk < 0
                let bpr = k / 32
                let w = Self.blocks(format, n: n, k: k, seed: UInt64(n * 131 + k))
                let weights = Self.dequantizedExact(format, w, n: n, k: k)
                // T = 1...17: every group size (AVX2: 1, 2: 8-output tiles; 3, 4: one quad's wide tile; 5...8: two
                // quads'; VNNI: 1: 8-output tiles, 2...8: row-lane tiles of that many inputs), after a whole group
                // too; 24 and 33: several whole groups, then one input (33: past the VNNI build's 32 inputs per pass).
                for T in Array(1...17) + [24, 33] {
                    let x = edges ? Self.edgeInputs(rows: T, seed: UInt64(T * 31)) : Self.inputs(rows: T, k: k, seed: UInt64(T * 977 + k))
                    let a = Self.quantize(x, rows: T, k: k, simd: false, digits: digits)
                    let y0 = Self.floats(T * n, seed: UInt64(T + n))
                    for accumulate in [false, true] {
                        let reference = run(builds[0].1, w, bpr: bpr, rows: 0..<n, a, rows: T, n: n, y0: y0, accumulate: accumulate)
                        for (name, kernel) in builds.dropFirst() {
                            let y = run(kernel, w, bpr: bpr, rows: 0..<n, a, rows: T, n: n, y0: y0, accumulate: accumulate)
                            XCTAssertEqual(y.map(\.bitPattern), reference.map(\.bitPattern), "\(format) \(name) digits=\(digits) N=\(n) K=\(k) T=\(T)")
                        }
                        // Each row quantized alone, and the weight rows in two ranges: the same bits, on every build.
                        for (name, fast) in builds {
                        for t in 0..<T {
                            let one = Self.quantize(Array(x[(t * k)..<((t + 1) * k)]), rows: 1, k: k, simd: false, digits: digits)
                            let split = n / 3
                            var y = Array(y0[(t * n)..<((t + 1) * n)])
                            y = run(fast, w, bpr: bpr, rows: 0..<split, one, rows: 1, n: n, y0: y, accumulate: accumulate)
                            y = run(fast, w, bpr: bpr, rows: split..<n, one, rows: 1, n: n, y0: y, accumulate: accumulate)
                            XCTAssertEqual(y.map(\.bitPattern), reference[(t * n)..<((t + 1) * n)].map(\.bitPattern),
                                           "\(format) \(name) N=\(n) K=\(k) row \(t) of \(T): depends on the batch")
                        }
                        }
                    }
                    // Within the derived bound of the exact fp64 product (accumulate off); the edge blocks
                    // (subnormal e, values near fp32's range) are outside the bound's assumptions.
                    if edges { continue }
                    let y = run(builds[0].1, w, bpr: bpr, rows: 0..<n, a, rows: T, n: n, y0: y0, accumulate: false)
                    for t in 0..<T {
                        for r in 0..<n {
                            var exact = 0.0, exactMagnitude = 0.0, terms = 0.0
                            var scales: [Double] = [], magnitudes: [Double] = []
                            for b in 0..<bpr {
                                let d = Double(a.d[Self.scaleIndex(t, b, bpr: bpr)])
                                var sw = 0.0
                                for j in 0..<32 {
                                    let i = b * 32 + j
                                    let (wi, scaledQ, minTerm) = weights[r * k + i]
                                    exact += wi * Double(x[t * k + i])
                                    exactMagnitude += abs(wi * Double(x[t * k + i]))
                                    terms += (abs(scaledQ) + abs(minTerm)) * abs(d * Double(Self.level(a, t, i, k: k, digits: digits)))
                                    sw += abs(wi)
                                }
                                scales.append(d); magnitudes.append(sw)
                            }
                            let bound = Q8Decode.dotBound(digits: digits, scales: scales, weightMagnitudes: magnitudes, termMagnitude: terms, exactMagnitude: exactMagnitude)
                            XCTAssertLessThanOrEqual(abs(Double(y[t * n + r]) - exact), bound,
                                                     "\(format) digits=\(digits) N=\(n) K=\(k) T=\(T) (\(t), \(r))")
                        }
                    }
                }
            }
        }
    }

    /// (w, d_w·q_w, m_w) of every element, exact in fp64.
    static func dequantizedExact(_ format: Q8ActivationRows.Format, _ w: [UInt8], n: Int, k: Int) -> [(Double, Double, Double)] {
        let bytes = format == .q4_1 ? 20 : 34
        var out: [(Double, Double, Double)] = []
        for blockIndex in 0..<(n * k / 32) {
            let o = blockIndex * bytes
            let d = Double(Half.toFloat(UInt16(w[o]) | UInt16(w[o + 1]) << 8))
            if format == .q4_1 {
                let m = Double(Half.toFloat(UInt16(w[o + 2]) | UInt16(w[o + 3]) << 8))
                for j in 0..<32 {
                    let q = Double(j < 16 ? w[o + 4 + j] & 0x0F : w[o + 4 + j - 16] >> 4)
                    out.append((d * q + m, d * q, m))
                }
            } else {
                for j in 0..<32 {
                    let q = Double(Int8(bitPattern: w[o + 2 + j]))
                    out.append((d * q, d * q, 0))
                }
            }
        }
        return out
    }

    /// Through the weights: `forwardRows` under q8 activations is the kernel on the quantized input, on
    /// every path this CPU has (the portable one included), and a row alone is the same bits as in a batch.
    func testWeightsUseTheIntegerKernelsOnEveryPath() throws {
        let saved = (QuantizedKernelDispatch.useAVX2, QuantizedKernelDispatch.useVNNI, QuantizedKernelDispatch.decodeActivations)
        defer {
            QuantizedKernelDispatch.useAVX2 = saved.0; QuantizedKernelDispatch.useVNNI = saved.1
            QuantizedKernelDispatch.decodeActivations = saved.2
        }
        QuantizedKernelDispatch.decodeActivations = .q8
        let (n, k, T) = (301, 608, 9)
        let x = Self.inputs(rows: T, k: k, seed: 5)
        let a = Self.quantize(x, rows: T, k: k, simd: false)
        for format in [Q8ActivationRows.Format.q4_1, .q8_0] {
            let blocks = Self.blocks(format, n: n, k: k, seed: 11)
            let weight: LinearWeight = format == .q4_1 ? try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: blocks)
                                                       : try Q8_0Weight(outFeatures: n, inFeatures: k, blocks: blocks)
            let expected = run(Self.builds(format)[0].1, blocks, bpr: k / 32, rows: 0..<n, a, rows: T, n: n,
                               y0: [Float](repeating: 0, count: T * n), accumulate: false)
            let paths = Self.dispatchPaths
            for (avx2, vnni) in paths {
                QuantizedKernelDispatch.useAVX2 = avx2
                QuantizedKernelDispatch.useVNNI = vnni
                // 1 to 3 threads: the weight rows split differently, the same bits.
                for threads in 1...3 {
                    var y = [Float](repeating: 0, count: T * n)
                    ComputeContext.run(ComputeContext(threads: threads)) { weight.forwardRows(x, rows: T, into: &y, accumulate: false) }
                    XCTAssertEqual(y.map(\.bitPattern), expected.map(\.bitPattern), "\(format) avx2=\(avx2) vnni=\(vnni) threads=\(threads)")
                }
                var one = [Float](repeating: 0, count: n)
                weight.forward(Array(x[(4 * k)..<(5 * k)]), tokens: 1, into: &one, accumulate: false)
                XCTAssertEqual(one.map(\.bitPattern), expected[(4 * n)..<(5 * n)].map(\.bitPattern), "\(format): one-token forward")
            }
        }
    }

    /// The setting is per role (`DecodeActivations.input(outputHead:)`): under `q8` a layer's decode rows take
    /// the int8 kernel and an output head's the two-digit one; under `q8-f32head` the head takes the fp32
    /// kernel (its bits under `f32`); under `q8-all` both take the int8 kernel; under `f32` neither. Both
    /// formats, on every path this CPU has (the portable one included).
    func testOutputHeadTakesTwoDigitInputsUnderQ8FP32OnesUnderQ8F32HeadAndInt8OnesUnderQ8All() throws {
        let saved = (QuantizedKernelDispatch.useAVX2, QuantizedKernelDispatch.useVNNI, QuantizedKernelDispatch.decodeActivations)
        defer {
            QuantizedKernelDispatch.useAVX2 = saved.0; QuantizedKernelDispatch.useVNNI = saved.1
            QuantizedKernelDispatch.decodeActivations = saved.2
        }
        let (n, k, T) = (77, 608, 3)
        let x = Self.inputs(rows: T, k: k, seed: 7)
        let a = Self.quantize(x, rows: T, k: k, simd: false), a2 = Self.quantize(x, rows: T, k: k, simd: false, digits: 2)
        let paths = Self.dispatchPaths
        for (avx2, vnni) in paths {
            QuantizedKernelDispatch.useAVX2 = avx2
            QuantizedKernelDispatch.useVNNI = vnni
            for format in [Q8ActivationRows.Format.q4_1, .q8_0] {
                let blocks = Self.blocks(format, n: n, k: k, seed: 13)
                func weight(head: Bool) throws -> LinearWeight {
                    format == .q4_1 ? try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: blocks, outputHead: head)
                                    : try Q8_0Weight(outFeatures: n, inFeatures: k, blocks: blocks, outputHead: head)
                }
                let layer = try weight(head: false), head = try weight(head: true)
                func rows(_ w: LinearWeight, _ setting: DecodeActivations) -> [UInt32] {
                    QuantizedKernelDispatch.decodeActivations = setting
                    var y = [Float](repeating: 0, count: T * n)
                    w.forwardRows(x, rows: T, into: &y, accumulate: false)
                    return y.map(\.bitPattern)
                }
                let zeros = [Float](repeating: 0, count: T * n)
                let int8 = run(Self.builds(format)[0].1, blocks, bpr: k / 32, rows: 0..<n, a, rows: T, n: n, y0: zeros, accumulate: false)
                let twoDigit = run(Self.builds(format, digits: 2)[0].1, blocks, bpr: k / 32, rows: 0..<n, a2, rows: T, n: n,
                                   y0: zeros, accumulate: false)
                let fp32 = rows(layer, .f32)   // (the two-digit kernel's accuracy: checkIntegerDotBuilds)
                let label = "\(format) avx2=\(avx2) vnni=\(vnni)"
                XCTAssertEqual(Set([fp32, int8.map(\.bitPattern), twoDigit.map(\.bitPattern)]).count, 3,
                               "\(label): the three kernels must differ for this test to tell them apart")
                XCTAssertEqual(rows(head, .f32), fp32, "\(label): head under f32")
                XCTAssertEqual(rows(layer, .q8), int8.map(\.bitPattern), "\(label): layer under q8")
                XCTAssertEqual(rows(head, .q8), twoDigit.map(\.bitPattern), "\(label): head under q8 takes two-digit inputs")
                XCTAssertEqual(rows(layer, .q8F32Head), int8.map(\.bitPattern), "\(label): layer under q8-f32head")
                XCTAssertEqual(rows(head, .q8F32Head), fp32, "\(label): head under q8-f32head keeps fp32 activations")
                XCTAssertEqual(rows(layer, .q8All), int8.map(\.bitPattern), "\(label): layer under q8-all")
                XCTAssertEqual(rows(head, .q8All), int8.map(\.bitPattern), "\(label): head under q8-all")
            }
        }
    }

    /// `forwardRowsGroup` (q/k/v or gate/up as one pool region, the input quantized once) writes the bits of
    /// separate `forwardRows` calls, for two and three parts of either format and odd sizes, on every path;
    /// it refuses (returning false, writing nothing) when a weight does not take int8 activations (f32, an output
    /// head under q8 (two digits) or q8-f32head (fp32)), is not a quantized weight, or the widths differ.
    func testGroupedDecodeRowsAreTheBitsOfSeparateProductsAndRefuseOtherWeights() throws {
        let saved = (QuantizedKernelDispatch.useAVX2, QuantizedKernelDispatch.useVNNI, QuantizedKernelDispatch.decodeActivations)
        defer {
            QuantizedKernelDispatch.useAVX2 = saved.0; QuantizedKernelDispatch.useVNNI = saved.1
            QuantizedKernelDispatch.decodeActivations = saved.2
        }
        QuantizedKernelDispatch.decodeActivations = .q8
        let k = 608
        func weight(_ f: Q8ActivationRows.Format, _ n: Int, seed: UInt64, head: Bool = false) throws -> LinearWeight {
            let b = Self.blocks(f, n: n, k: k, seed: seed)
            return f == .q4_1 ? try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: b, outputHead: head)
                              : try Q8_0Weight(outFeatures: n, inFeatures: k, blocks: b, outputHead: head)
        }
        let a = try weight(.q4_1, 577, seed: 1), b = try weight(.q8_0, 193, seed: 2), c = try weight(.q4_1, 65, seed: 3)
        let paths = Self.dispatchPaths
        for (avx2, vnni) in paths {
            QuantizedKernelDispatch.useAVX2 = avx2
            QuantizedKernelDispatch.useVNNI = vnni
            for T in [1, 3, 9] {
                let x = Self.inputs(rows: T, k: k, seed: UInt64(T))
                var ea = [Float](repeating: 0, count: T * 577), eb = [Float](repeating: 0, count: T * 193)
                var ec = [Float](repeating: 0, count: T * 65)
                a.forwardRows(x, rows: T, into: &ea, accumulate: false)
                b.forwardRows(x, rows: T, into: &eb, accumulate: false)
                c.forwardRows(x, rows: T, into: &ec, accumulate: false)
                for three in [false, true] {
                    var ya = [Float](repeating: .nan, count: T * 577), yb = [Float](repeating: .nan, count: T * 193)
                    var yc = [Float](repeating: .nan, count: T * 65)
                    let done = ya.withUnsafeMutableBufferPointer { pa in
                        yb.withUnsafeMutableBufferPointer { pb in
                            yc.withUnsafeMutableBufferPointer { pc in
                                Q8ActivationRows.forwardRowsGroup(a, into: pa.baseAddress!, b, into: pb.baseAddress!,
                                                                  three ? c : nil, into: three ? pc.baseAddress! : nil, x: x, rows: T)
                            }
                        }
                    }
                    let label = "T=\(T) three=\(three) avx2=\(avx2) vnni=\(vnni)"
                    XCTAssertTrue(done, label)
                    XCTAssertEqual(ya.map(\.bitPattern), ea.map(\.bitPattern), label)
                    XCTAssertEqual(yb.map(\.bitPattern), eb.map(\.bitPattern), label)
                    if three { XCTAssertEqual(yc.map(\.bitPattern), ec.map(\.bitPattern), label) }
                    else { XCTAssertTrue(yc.allSatisfy(\.isNaN), "\(label): the absent third part is not written") }
                }
            }
        }
        let head = try weight(.q8_0, 64, seed: 4, head: true)
        let dense = DenseWeight(outFeatures: 64, inFeatures: k, data: Self.floats(64 * k, seed: 5))
        let narrow = try Q4_1Weight(outFeatures: 64, inFeatures: 32, blocks: Self.blocks(.q4_1, n: 64, k: 32, seed: 6))
        let x = Self.inputs(rows: 1, k: k, seed: 9)
        var y1 = [Float](repeating: .nan, count: 577), y2 = [Float](repeating: .nan, count: 577)
        for (other, setting) in [(head, DecodeActivations.q8), (head, .q8F32Head), (dense, .q8), (narrow, .q8), (b, .f32)]
                as [(LinearWeight, DecodeActivations)] {
            QuantizedKernelDispatch.decodeActivations = setting
            XCTAssertFalse(Q8ActivationRows.forwardRowsGroup(a, into: &y1, other, into: &y2, nil, into: nil, x: x, rows: 1),
                           "\(type(of: other)) under \(setting)")
        }
        XCTAssertTrue(y1.allSatisfy(\.isNaN) && y2.allSatisfy(\.isNaN), "a refused group writes nothing")
    }
}
