import CKernels
import Foundation
import Kernels
import Model
import TestSupport
import Training
import XCTest

/// Decode rows' fp16 copies of LoRA matrices (`HalfMatrix`, `LoRAAdapter.prepareHalfRows`): the
/// conversions are exact, the power-of-two scale puts each matrix in fp16's normal range, and
/// `applyRows` on the copies is the fp32 kernels on the fp16-rounded values, bit for bit.
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

    /// Every fp16 bit pattern: the F16C and plain conversions give the value Swift's Float16 gives, bit for
    /// bit (NaNs stay NaNs).
    func testHalfToFloatIsExactForEveryPatternOnBothBuilds() {
        let all = (0...UInt16.max).map { $0 }
        var fast = [Float](repeating: 0, count: all.count), plain = fast
        ck_half_to_float(all, all.count, &fast)
        ck_half_to_float_portable(all, all.count, &plain)
        for (i, h) in all.enumerated() {
            let want = Float(Float16(bitPattern: h))
            if want.isNaN {
                XCTAssertTrue(fast[i].isNaN && plain[i].isNaN, "0x\(String(h, radix: 16))")
            } else {
                XCTAssertEqual(fast[i].bitPattern, want.bitPattern, "F16C 0x\(String(h, radix: 16))")
                XCTAssertEqual(plain[i].bitPattern, want.bitPattern, "plain 0x\(String(h, radix: 16))")
            }
        }
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
            var fast = [Float](repeating: 0, count: w.count), plain = fast
            m.decode(into: &fast)
            m.decodePortable(into: &plain)
            XCTAssertEqual(fast.map(\.bitPattern), plain.map(\.bitPattern))
            XCTAssertEqual(fast.map { ($0 * m.inverseScale).bitPattern }, w.map(\.bitPattern))
        }
        // All zeros: no scale, zero bits.
        let zero = Self.half([Float](repeating: 0, count: 9))
        XCTAssertEqual(zero?.exponent, 0)
        XCTAssertEqual(zero?.bits, [UInt16](repeating: 0, count: 9))
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
        XCTAssertEqual(a.residentBytes, 4 * a.parameterCount
            + a.halfRows.reduce(0) { $0 + 2 * (($1.a?.bits.count ?? 0) + ($1.b?.bits.count ?? 0)) })
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
                // The portable build: plain conversion, plain kernels, the powers of two in the alphas.
                let ha = a.halfRows[i].a!, hb = a.halfRows[i].b!
                var aw = [Float](repeating: 0, count: p.aCount), bw = [Float](repeating: 0, count: p.bCount)
                ha.decodePortable(into: &aw)
                hb.decodePortable(into: &bw)
                var h = [Float](repeating: 0, count: T * r)
                DenseRows.forwardPortable(aw, k: k, rows: 0..<r, x: x, ldx: k, tokens: T, into: &h, ldy: r,
                                          alpha: ha.inverseScale, accumulate: false)
                DenseRows.lowRankPortable(bw, outputs: n, rank: r, h: h, ldh: r, tokens: T, into: &plain, ldy: n,
                                          alpha: p.scaling * hb.inverseScale)

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
