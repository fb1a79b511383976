import CKernels
import Foundation
import Kernels
import Model
import TestSupport
import Training
import XCTest

/// Decode rows' fp16 copies of LoRA matrices (`HalfMatrix`, `LoRAAdapter.prepareHalfRows`): the fused
/// kernels convert exactly as they load and are the fp32 kernels on the converted matrices bit for bit, the
/// power-of-two scale puts each matrix in fp16's normal range, and `applyRows` on the copies is the fp32
/// kernels on the fp16-rounded values, bit for bit.
final class HalfRowsTests: XCTestCase {
    /// fp16's unit roundoff: 2^-11 relative per weight rounded to a normal fp16.
    static let halfUnitRoundoff = 0x1p-11

    static let config = LlamaConfig(vocabSize: 64, hiddenSize: 40, intermediateSize: 70, numLayers: 2, numHeads: 4,
                                    numKVHeads: 2, headDim: 10, rmsNormEps: 1e-5, ropeTheta: 10_000,
                                    maxPositionEmbeddings: 64, tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2])

    static func floats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnitFloat() * 2 - 1) * scale }
    }

    static func half(_ w: [Float]) -> HalfMatrix? { w.withUnsafeBufferPointer { HalfMatrix($0) } }

    /// What a copy stands for: 2^-exponent · half(bits[i]), computed without the kernels' conversion.
    static func rounded(_ m: HalfMatrix) -> [Float] { m.bits.map { Float(Float16(bitPattern: $0)) * m.inverseScale } }

    /// The finite fp16 bit patterns (what a `HalfMatrix` holds: it keeps no copy of a non-finite matrix).
    static let finitePatterns: [UInt16] = (0...UInt16.max).filter { $0 & 0x7C00 != 0x7C00 }

    /// The fp32 value of fp16 bits, by Swift's Float16 (not the kernels' conversion).
    static func value(_ h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

    /// Every finite fp16 pattern read through both fused kernels, F16C / AVX2 and portable builds: the value
    /// Swift's Float16 gives, bit for bit. Dense with K = 16 and X the identity puts W[r, t] alone in one lane
    /// (the other products are ±0, the lanes start at +0), low rank with R = 8 and H the identity gives
    /// 0 + B[n, t] likewise: so each output is w + 0 exactly (−0 becomes +0, every other value unchanged).
    func testFusedKernelsConvertEveryFinitePatternExactlyOnBothBuilds() {
        let w = Self.finitePatterns
        let want = w.map { (Self.value($0) + 0).bitPattern }
        XCTAssertEqual(w.count % 16, 0)
        let eye16 = (0..<256).map { Float($0 / 16 == $0 % 16 ? 1 : 0) }, eye8 = (0..<64).map { Float($0 / 8 == $0 % 8 ? 1 : 0) }
        for portable in [false, true] {
            let rows = w.count / 16
            var y = [Float](repeating: .nan, count: 16 * rows)
            let dense = portable ? ck_dense_rows_half_portable : ck_dense_rows_half
            dense(w, 16, 0, rows, eye16, 16, 16, &y, rows, 1, 0)
            // y[t, r] = W[r, t]: back to W's order.
            let got = (0..<w.count).map { y[($0 % 16) * rows + $0 / 16].bitPattern }
            XCTAssertEqual(got, want, "dense, portable \(portable)")

            let outputs = w.count / 8
            var z = [Float](repeating: 0, count: 8 * outputs)
            let lowRank = portable ? ck_low_rank_rows_half_portable : ck_low_rank_rows_half
            lowRank(w, outputs, 8, eye8, 8, 8, &z, outputs, 1)
            let gotB = (0..<w.count).map { z[($0 % 8) * outputs + $0 / 8].bitPattern }
            XCTAssertEqual(gotB, want, "low rank, portable \(portable)")
        }
    }

    /// n random finite fp16 patterns: every exponent, subnormals and signed zeros included.
    static func patterns(_ n: Int, seed: UInt64) -> [UInt16] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in finitePatterns[Int(rng.next() % UInt64(finitePatterns.count))] }
    }

    /// Encoding (`ck_float_to_half_scaled`, F16C and plain C) is Swift's Float16(w · scale), round to nearest
    /// even, bit for bit: on every finite fp16 value, the midpoints between neighbours (ties, subnormal ones
    /// included), a nudge either side of them, values past the range and random floats over fp32's exponents.
    func testEncodingRoundsToNearestEvenAsFloat16Does() {
        var w: [Float] = []
        for p in Self.finitePatterns where p & 0x7FFF < 0x7BFF {
            let a = Float(Float16(bitPattern: p)), b = Float(Float16(bitPattern: p + 1))
            let mid = Float((Double(a) + Double(b)) / 2)   // exact in fp32 (12 significant bits)
            w += [a, mid, mid.nextUp, mid.nextDown]
        }
        w += [65504, 65519.99, 65520, 70000, -1e9, 0x1p-25, 0x1.8p-25, 0x1p-26, 0, -0.0, .leastNonzeroMagnitude]
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<20_000 {
            w.append(Float(sign: rng.next() & 1 == 0 ? .plus : .minus, exponent: Int(rng.next() % 80) - 40,
                           significand: 1 + Float(rng.nextUnitFloat())))
        }
        for scale: Float in [1, 0x1p-3, 0x1p20] {
            let want = w.map { Float16($0 * scale).bitPattern }
            var fast = [UInt16](repeating: 0, count: w.count), plain = fast
            ck_float_to_half_scaled(w, w.count, scale, &fast)
            ck_float_to_half_scaled_portable(w, w.count, scale, &plain)
            for i in w.indices where fast[i] != want[i] || plain[i] != want[i] {
                XCTFail("w \(w[i]) scale \(scale): F16C \(fast[i]), plain \(plain[i]), Float16 \(want[i])")
                break
            }
        }
    }

    /// A fused kernel's outputs from y0 (AVX2 build, portable build, each row alone) against the fp32 kernel's
    /// on the converted matrix (AVX2, portable), bit for bit; counts the case, and whether y moved.
    static func expectSameBits(fast: [Float], plain: [Float], fp32: [Float], fp32Plain: [Float], alone: [Float], y0: [Float],
                               _ what: String, cases: inout Int, changed: inout Int) {
        XCTAssertEqual(fast.map(\.bitPattern), fp32.map(\.bitPattern), "AVX2 " + what)
        XCTAssertEqual(plain.map(\.bitPattern), fp32Plain.map(\.bitPattern), "portable " + what)
        XCTAssertEqual(fast.map(\.bitPattern), plain.map(\.bitPattern), "AVX2 vs portable " + what)
        XCTAssertEqual(alone.map(\.bitPattern), fast.map(\.bitPattern), "row alone " + what)
        cases += 1
        if fast.map(\.bitPattern) != y0.map(\.bitPattern) { changed += 1 }
    }

    /// `ck_dense_rows_half` is `ck_dense_rows` on the converted W, bit for bit, in the AVX2 and portable builds,
    /// for 1..9 rows (and each row alone: batch-invariant), K and N not multiples of 8 or 16 (the 2 x 2 tiles'
    /// odd row, the K % 16 tail), a row range not from 0, strided X and Y, alpha != 1, accumulate on and off.
    func testFusedDenseRowsAreTheFP32KernelOnTheConvertedMatrix() {
        var cases = 0, changed = 0
        for (N, K) in [(1, 1), (5, 7), (8, 16), (13, 23), (16, 40), (7, 70), (3, 576), (4, 129), (33, 24), (64, 17)] {
            let w = Self.patterns(N * K, seed: UInt64(N * 1000 + K)), wf = w.map(Self.value)
            for T in 1...9 {
                let ldx = K + 3, ldy = N + 2
                let x = Self.floats(T * ldx, seed: UInt64(T * 77 + K))
                let y0 = Self.floats(T * ldy, seed: UInt64(T * 31 + N), scale: 100)
                for (alpha, accumulate) in [(Float(1), Int32(0)), (1, 1), (-0.37, 0), (-0.37, 1)] {
                    let (r0, r1) = N > 2 ? (1, N) : (0, N)
                    let what = "N=\(N) K=\(K) T=\(T) alpha=\(alpha) accumulate=\(accumulate)"
                    var fast = y0, plain = y0, fp32 = y0, fp32Plain = y0, alone = y0
                    ck_dense_rows_half(w, K, r0, r1, x, ldx, T, &fast, ldy, alpha, accumulate)
                    ck_dense_rows_half_portable(w, K, r0, r1, x, ldx, T, &plain, ldy, alpha, accumulate)
                    ck_dense_rows(wf, K, r0, r1, x, ldx, T, &fp32, ldy, alpha, accumulate)
                    ck_dense_rows_portable(wf, K, r0, r1, x, ldx, T, &fp32Plain, ldy, alpha, accumulate)
                    x.withUnsafeBufferPointer { xp in
                        alone.withUnsafeMutableBufferPointer { yp in
                            for t in 0..<T {
                                ck_dense_rows_half(w, K, r0, r1, xp.baseAddress! + t * ldx, ldx, 1, yp.baseAddress! + t * ldy, ldy,
                                                   alpha, accumulate)
                            }
                        }
                    }
                    Self.expectSameBits(fast: fast, plain: plain, fp32: fp32, fp32Plain: fp32Plain, alone: alone, y0: y0, what,
                                        cases: &cases, changed: &changed)
                }
            }
        }
        // Not a vacuous comparison: y moved in nearly every case (with accumulate, a tiny product can leave it).
        XCTAssertGreaterThan(changed, cases * 9 / 10)
    }

    /// `ck_low_rank_rows_half` is `ck_low_rank_rows` on the converted B, bit for bit, in the AVX2 and portable
    /// builds, for 1..9 rows (and each row alone), N not a multiple of 8 (the plain tail), ranks 1..64 with
    /// R % 8 tails in the transpose, and 300 (over the AVX2 body's stack limit: the plain body), alpha != 1.
    func testFusedLowRankRowsAreTheFP32KernelOnTheConvertedMatrix() {
        var cases = 0, changed = 0
        let shapes = [1, 8, 13, 576].flatMap { n in [1, 2, 5, 8, 9, 16, 17, 33, 64, 300].map { (n, $0) } }
        for (N, R) in shapes where N * R <= 60_000 {
            let b = Self.patterns(N * R, seed: UInt64(N * 1000 + R)), bf = b.map(Self.value)
            for T in 1...9 {
                let ldh = R + 1, ldy = N + 3
                let h = Self.floats(T * ldh, seed: UInt64(T * 53 + R))
                let y0 = Self.floats(T * ldy, seed: UInt64(T * 17 + N), scale: 100)
                for alpha: Float in [1, 0.625e-3] {
                    let what = "N=\(N) R=\(R) T=\(T) alpha=\(alpha)"
                    var fast = y0, plain = y0, fp32 = y0, fp32Plain = y0, alone = y0
                    ck_low_rank_rows_half(b, N, R, h, ldh, T, &fast, ldy, alpha)
                    ck_low_rank_rows_half_portable(b, N, R, h, ldh, T, &plain, ldy, alpha)
                    ck_low_rank_rows(bf, N, R, h, ldh, T, &fp32, ldy, alpha)
                    ck_low_rank_rows_portable(bf, N, R, h, ldh, T, &fp32Plain, ldy, alpha)
                    h.withUnsafeBufferPointer { hp in
                        alone.withUnsafeMutableBufferPointer { yp in
                            for t in 0..<T {
                                ck_low_rank_rows_half(b, N, R, hp.baseAddress! + t * ldh, ldh, 1, yp.baseAddress! + t * ldy, ldy, alpha)
                            }
                        }
                    }
                    Self.expectSameBits(fast: fast, plain: plain, fp32: fp32, fp32Plain: fp32Plain, alone: alone, y0: y0, what,
                                        cases: &cases, changed: &changed)
                }
            }
        }
        // Not a vacuous comparison: y moved in nearly every case (random patterns include values so small
        // that alpha times their products is under half an ulp of y, which leaves y as it was).
        XCTAssertGreaterThan(changed, cases * 9 / 10)
    }

    /// Matrices of values an fp16 holds after their power of two, tiny (a young LoRA B) to large: the scaled
    /// maximum lands in [2^14, 2^15), and the copy gives every value back exactly.
    func testRepresentableValuesRoundTripAndTheScaleFitsTheMaximum() {
        for exponent in [31, 102, 15, 0, -1, -86] {
            // fp16 values under 2^14 and a maximum of 1.5 · 2^14, times 2^-exponent: exact in fp16 once scaled back.
            let down = Float(sign: .plus, exponent: -exponent, significand: 1)
            var w = Self.floats(257, seed: UInt64(exponent + 200)).map { Float(Float16($0 * 0x1p14)) * down }
            let top = 0x1.8p14 * down
            w[17] = top; w[18] = -top; w[19] = 0
            guard let m = Self.half(w) else { return XCTFail("top \(top): no copy") }
            XCTAssertEqual(m.exponent, exponent, "top \(top)")
            let scaledTop = w.map { abs($0) }.max()! * Float(sign: .plus, exponent: m.exponent, significand: 1)
            XCTAssertTrue(scaledTop >= 0x1p14 && scaledTop < 0x1p15, "top \(top): scaled max \(scaledTop)")
            XCTAssertEqual(Self.rounded(m).map(\.bitPattern), w.map(\.bitPattern), "top \(top): round trip")
        }
        // All zeros: no scale, zero bits.
        let zero = Self.half([Float](repeating: 0, count: 9))
        XCTAssertEqual(zero?.exponent, 0)
        XCTAssertEqual(zero.map { Array($0.bits) }, [UInt16](repeating: 0, count: 9))
    }

    /// A non-finite value, or a maximum under 2^-88 (the scaled-back fp16 subnormals would be fp32
    /// subnormals), keeps the fp32 path; so does a B whose folded alpha (scaling · 2^-exponent) is not normal.
    func testNonFiniteOrOutOfRangeMatricesKeepFP32() {
        XCTAssertNil(Self.half([1, .nan, 2]))
        XCTAssertNil(Self.half([1, .infinity]))
        XCTAssertNil(Self.half([-.infinity, 0]))
        XCTAssertNil(Self.half([0x1.fffffep-89, 0]))
        XCTAssertNotNil(Self.half([0x1p-88, 0]))
        XCTAssertNotNil(Self.half([.greatestFiniteMagnitude, -1]))

        let c = Self.config
        let a = LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 0x1p-48, dropout: 0, targets: [.q, .v]), base: c)
        a.initialize(seed: 5)
        let q = a.pair(layer: 0, module: .q)!, v = a.pair(layer: 1, module: .v)!
        for i in 0..<q.bCount { a.parameters[q.bOffset + i] = 1e-20 }   // exponent 81: 2^-50 · 2^-81 is subnormal
        for i in 0..<v.bCount { a.parameters[v.bOffset + i] = 0.5 }
        a.parameters[v.aOffset + 3] = .nan
        a.prepareHalfRows()
        let qi = a.pairs.firstIndex(of: q)!, vi = a.pairs.firstIndex(of: v)!
        XCTAssertNotNil(a.halfRows[qi].a)
        XCTAssertNil(a.halfRows[qi].b, "scaling · 2^-exponent under fp32's normals")
        XCTAssertNil(a.halfRows[vi].a, "a NaN")
        XCTAssertNotNil(a.halfRows[vi].b)
        // The copies live in one buffer at the parameters' offsets (a matrix without a copy keeps its room).
        XCTAssertEqual(a.halfRows[qi].a?.bits.indices, q.aOffset..<q.aOffset + q.aCount)
        XCTAssertEqual(a.halfRows[vi].b?.bits.indices, v.bOffset..<v.bOffset + v.bCount)
        XCTAssertEqual(a.residentBytes, (4 + 2) * a.parameterCount)
    }

    /// An adapter with a young B (~1e-5: subnormal in fp16 without the scale).
    static func adapter(seed: UInt64) -> LoRAAdapter {
        let a = LoRAAdapter(config: LoRAConfig(rank: 5, alpha: 10, dropout: 0), base: config)
        a.initialize(seed: seed)
        var rng = SeededGenerator(seed: seed + 1)
        for p in a.pairs {
            for i in 0..<p.bCount { a.parameters[p.bOffset + i] = Float(rng.nextUnitFloat() * 2 - 1) * 3e-5 }
        }
        return a
    }

    /// `applyRows` on the copies: the same bits as the fp32 path on an adapter holding the fp16-rounded
    /// values, and as the plain (non-AVX2, non-F16C) kernels and conversion with the scales folded in, for
    /// every row count and each row alone; within fp16's rounding (2^-11 per weight) of the fp32 path.
    func testApplyRowsOnTheCopiesIsTheFP32KernelsOnTheRoundedValues() {
        let c = Self.config
        let a = Self.adapter(seed: 21)
        let exact = Self.adapter(seed: 21)
        a.prepareHalfRows()
        let rounded = Self.adapter(seed: 21)
        for (i, p) in a.pairs.enumerated() {
            guard let ha = a.halfRows[i].a, let hb = a.halfRows[i].b else { return XCTFail("pair \(i) has no copy") }
            XCTAssertGreaterThanOrEqual(hb.exponent, 14 + 15, "B ~3e-5 is scaled up")
            rounded.parameters.replaceSubrange(p.aOffset..<p.aOffset + p.aCount, with: Self.rounded(ha))
            rounded.parameters.replaceSubrange(p.bOffset..<p.bOffset + p.bCount, with: Self.rounded(hb))
        }
        for module in LinearModule.allCases {
            let (n, k) = LoRAAdapter.shape(of: module, c)
            let i = a.pairs.firstIndex { $0.layer == 1 && $0.module == module }!
            let p = a.pairs[i], r = p.rank
            for T in [1, 2, 3, 8, 17] {
                let x = Self.floats(T * k, seed: UInt64(T * 13 + k))
                let y0 = Self.floats(T * n, seed: UInt64(T + n), scale: 1e-3)
                var half = y0, alone = y0, reference = y0, plain = y0, fp32 = y0
                a.applyRows(layer: 1, module: module, x: x, ldx: k, rows: T, y: &half, ldy: n)
                rounded.applyRows(layer: 1, module: module, x: x, ldx: k, rows: T, y: &reference, ldy: n)
                exact.applyRows(layer: 1, module: module, x: x, ldx: k, rows: T, y: &fp32, ldy: n)
                x.withUnsafeBufferPointer { xp in
                    alone.withUnsafeMutableBufferPointer { yp in
                        for t in 0..<T {
                            a.applyRows(layer: 1, module: module, x: xp.baseAddress! + t * k, ldx: k, rows: 1,
                                        y: yp.baseAddress! + t * n, ldy: n)
                        }
                    }
                }
                // The portable build: the fused kernels' plain bodies, the powers of two in the alphas.
                let ha = a.halfRows[i].a!, hb = a.halfRows[i].b!
                var h = [Float](repeating: 0, count: T * r)
                DenseRows.forwardPortable(ha, k: k, rows: 0..<r, x: x, ldx: k, tokens: T, into: &h, ldy: r, accumulate: false)
                DenseRows.lowRankPortable(hb, outputs: n, rank: r, h: h, ldh: r, tokens: T, into: &plain, ldy: n,
                                          alpha: p.scaling)

                XCTAssertEqual(half.map(\.bitPattern), reference.map(\.bitPattern), "\(module) T=\(T): not the rounded values' fp32 path")
                XCTAssertEqual(half.map(\.bitPattern), plain.map(\.bitPattern), "\(module) T=\(T): not the portable build's bits")
                XCTAssertEqual(half.map(\.bitPattern), alone.map(\.bitPattern), "\(module) T=\(T): a row depends on the other rows")
                XCTAssertGreaterThan(zip(half, y0).map { abs(Double($0 - $1)) }.max()!, 1e-6, "\(module): the adapter must change y")

                // From the fp32 path: each A and B weight within 2^-11 relative (u), so with m_r = Σ_k |x_k·A[r,k]|,
                // |ĥ_r − h_r| ≤ u·m_r and the exact deltas differ by at most scaling·Σ_r |B[n,r]|·m_r·u·(2 + u);
                // each path's fp32 sums add γ_K and γ_R of the same magnitudes, and the final
                // y + alpha·s two roundings of |y| + |alpha·s|.
                let u = Self.halfUnitRoundoff
                let w = exact.parameters
                for t in 0..<T {
                    let m = (0..<r).map { rr in (0..<k).reduce(0.0) { $0 + abs(Double(x[t * k + $1]) * Double(w[p.aOffset + rr * k + $1])) } }
                    for o in 0..<n {
                        let mag = (0..<r).reduce(0.0) { $0 + abs(Double(w[p.bOffset + o * r + $1])) * m[$1] } * Double(p.scaling)
                        let bound = mag * (u * (2 + u) + 2 * (FP32.gamma(k) + FP32.gamma(r)) * (1 + u) * (1 + u))
                            + 2 * FP32.roundings(2) * (abs(Double(y0[t * n + o])) + mag * (1 + u) * (1 + u))
                        XCTAssertLessThanOrEqual(abs(Double(half[t * n + o]) - Double(fp32[t * n + o])), bound,
                                                 "\(module) T=\(T) t=\(t) o=\(o)")
                    }
                }
            }
        }
    }
}
