import Foundation
import Kernels
import Model
import TestSupport
import Training
import XCTest

/// Decode rows' LoRA terms (`DenseRows`, `LoRAAdapter.applyRows`): each row's bits do not depend on
/// how many rows share the call, on the row split, or on the CPU's vector width, and they are the
/// sums they claim to be.
final class DecodeRowsTests: XCTestCase {
    static func floats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnitFloat() * 2 - 1) }
    }

    /// K around the 16-lane stride (tails of every length), odd N, T = 1...17.
    func testDenseRowsAreEachRowAloneBitForBitAndCloseToTheExactSum() {
        for k in [1, 7, 15, 16, 17, 100, 577] {
            let n = 13
            let w = Self.floats(n * k, seed: UInt64(k))
            for T in 1...17 {
                let x = Self.floats(T * k, seed: UInt64(100 + T * k))
                let y0 = Self.floats(T * n, seed: UInt64(7 * T + k))
                for accumulate in [false, true] {
                    // alpha 0.5: a power of two, so scaling adds no rounding to the bound below.
                    var all = y0, alone = y0, split = y0, portable = y0
                    DenseRows.forward(w, k: k, rows: 0..<n, x: x, ldx: k, tokens: T, into: &all, ldy: n, alpha: 0.5, accumulate: accumulate)
                    x.withUnsafeBufferPointer { xp in
                        alone.withUnsafeMutableBufferPointer { yp in
                            for t in 0..<T {
                                DenseRows.forward(w, k: k, rows: 0..<n, x: xp.baseAddress! + t * k, ldx: k, tokens: 1,
                                                  into: yp.baseAddress! + t * n, ldy: n, alpha: 0.5, accumulate: accumulate)
                            }
                        }
                    }
                    for r0 in stride(from: 0, to: n, by: 5) {
                        split.withUnsafeMutableBufferPointer { yp in
                            DenseRows.forward(w, k: k, rows: r0..<min(n, r0 + 5), x: x, ldx: k, tokens: T, into: yp.baseAddress!,
                                              ldy: n, alpha: 0.5, accumulate: accumulate)
                        }
                    }
                    DenseRows.forwardPortable(w, k: k, rows: 0..<n, x: x, ldx: k, tokens: T, into: &portable, ldy: n, alpha: 0.5,
                                              accumulate: accumulate)
                    let bits = all.map(\.bitPattern)
                    XCTAssertEqual(bits, alone.map(\.bitPattern), "K=\(k) T=\(T): a row depends on the other rows")
                    XCTAssertEqual(bits, split.map(\.bitPattern), "K=\(k) T=\(T): a row depends on the row range")
                    XCTAssertEqual(bits, portable.map(\.bitPattern), "K=\(k) T=\(T): the AVX2 and portable builds differ")
                    // One fp32 sum of K products vs the exact one: γ_K · Σ|w·x| (Higham §3.1); the
                    // accumulate add rounds once more, u · |result|.
                    for t in 0..<T {
                        for r in 0..<n {
                            var exact = 0.0, mag = 0.0
                            for j in 0..<k {
                                let p = Double(w[r * k + j]) * Double(x[t * k + j])
                                exact += p; mag += abs(p)
                            }
                            let base = accumulate ? Double(y0[t * n + r]) : 0
                            let want = base + 0.5 * exact
                            let bound = 0.5 * FP32.gamma(k) * mag + FP32.roundings(1) * abs(want) * (accumulate ? 1 : 0)
                            XCTAssertLessThanOrEqual(abs(Double(all[t * n + r]) - want), bound, "K=\(k) T=\(T) t=\(t) r=\(r)")
                        }
                    }
                }
            }
        }
    }

    /// LoRA's B product (`DenseRows.lowRank`): ranks around the 8-wide transpose (tails of every length) and
    /// above the stack limit (256: the plain body), outputs around the 8-output block, T = 1...11 (blocks of 8,
    /// 4 and 1 rows): each row the same bits alone, in any row split and in the portable build, and the
    /// running sum it claims to be.
    func testLowRankRowsAreEachRowAloneAndTheirPortableTwinAndCloseToTheExactSum() {
        for r in [1, 3, 7, 8, 9, 16, 17, 64, 300] {
            for n in [1, 7, 8, 13, 40] {
                let b = Self.floats(n * r, seed: UInt64(r * 100 + n))
                for T in 1...11 {
                    let h = Self.floats(T * r, seed: UInt64(7 + T * r))
                    let y0 = Self.floats(T * n, seed: UInt64(3 * T + n))
                    // alpha 0.5: a power of two, so scaling adds no rounding to the bound below.
                    var all = y0, alone = y0, portable = y0
                    DenseRows.lowRank(b, outputs: n, rank: r, h: h, ldh: r, tokens: T, into: &all, ldy: n, alpha: 0.5)
                    h.withUnsafeBufferPointer { hp in
                        alone.withUnsafeMutableBufferPointer { yp in
                            for t in 0..<T {
                                DenseRows.lowRank(b, outputs: n, rank: r, h: hp.baseAddress! + t * r, ldh: r, tokens: 1,
                                                  into: yp.baseAddress! + t * n, ldy: n, alpha: 0.5)
                            }
                        }
                    }
                    DenseRows.lowRankPortable(b, outputs: n, rank: r, h: h, ldh: r, tokens: T, into: &portable, ldy: n, alpha: 0.5)
                    let bits = all.map(\.bitPattern)
                    XCTAssertEqual(bits, alone.map(\.bitPattern), "R=\(r) N=\(n) T=\(T): a row depends on the other rows")
                    XCTAssertEqual(bits, portable.map(\.bitPattern), "R=\(r) N=\(n) T=\(T): the AVX2 and portable builds differ")
                    // One fp32 running sum of R products vs the exact one: γ_R · Σ|h·b| (Higham §3.1); the add
                    // into y rounds once more, u · |result|.
                    for t in 0..<T {
                        for o in 0..<n {
                            var exact = 0.0, mag = 0.0
                            for j in 0..<r {
                                let p = Double(h[t * r + j]) * Double(b[o * r + j])
                                exact += p; mag += abs(p)
                            }
                            let want = Double(y0[t * n + o]) + 0.5 * exact
                            let bound = 0.5 * FP32.gamma(r) * mag + FP32.roundings(1) * abs(want)
                            XCTAssertLessThanOrEqual(abs(Double(all[t * n + o]) - want), bound, "R=\(r) N=\(n) T=\(T) t=\(t) o=\(o)")
                        }
                    }
                }
            }
        }
    }

    /// `applyRows` of rows under one adapter: every row the same bits as that row alone, and close to
    /// the sgemm path (`apply` with T tokens, what prefill uses).
    func testLoRAApplyRowsIsEachRowAloneAndMatchesTheChunkPath() {
        // Widths 40 and 70: K % 16 tails on every module.
        let c = LlamaConfig(vocabSize: 64, hiddenSize: 40, intermediateSize: 70, numLayers: 2, numHeads: 4, numKVHeads: 2,
                            headDim: 10, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 64,
                            tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2])
        let a = ServingFixtures.adapter(seed: 9, config: c, rank: 5, scale: 0.5)
        for module in LinearModule.allCases {
            let (n, k) = LoRAAdapter.shape(of: module, c)
            for T in [1, 2, 3, 8, 17] {
                let x = Self.floats(T * k, seed: UInt64(T * 13 + k))
                let y0 = Self.floats(T * n, seed: UInt64(T + n))
                var rows = y0, alone = y0, chunk = y0
                a.applyRows(layer: 1, module: module, x: x, ldx: k, rows: T, y: &rows, ldy: n)
                x.withUnsafeBufferPointer { xp in
                    alone.withUnsafeMutableBufferPointer { yp in
                        for t in 0..<T {
                            a.applyRows(layer: 1, module: module, x: xp.baseAddress! + t * k, ldx: k, rows: 1,
                                        y: yp.baseAddress! + t * n, ldy: n)
                        }
                    }
                    chunk.withUnsafeMutableBufferPointer { yp in a.apply(layer: 1, module: module, x: xp.baseAddress!, tokens: T, y: yp.baseAddress!) }
                }
                XCTAssertEqual(rows.map(\.bitPattern), alone.map(\.bitPattern), "\(module) T=\(T): a row depends on the other rows")
                // Two orders of the two chained products (K then R terms), relative to the outputs' scale;
                // the delta changes y (else this would compare y0 with itself).
                let delta = zip(rows, y0).map { Double($0 - $1) }
                XCTAssertGreaterThan(delta.map(abs).max()!, 1e-3, "\(module): the adapter must change the output")
                let err = zip(rows, chunk).map { abs(Double($0) - Double($1)) }.max()!
                let scale = (rows + chunk).map { abs(Double($0)) }.max()!
                XCTAssertLessThanOrEqual(err / scale, FP32.randomProduct(terms: k) + FP32.randomProduct(terms: 5) + FP32.roundings(2),
                                         "\(module) T=\(T): applyRows and the sgemm path disagree")
            }
        }
    }

    /// Two sequences on the same adapter (and one on another) decode in one step as a run of rows that
    /// share `applyRows`; each sequence's logits are the same bits as when it runs alone.
    func testSequencesSharingAnAdapterDecodeAsTheyDoAlone() throws {
        let lm = try ServingFixtures.model()
        let m = lm.model, c = m.config
        let a1 = AdapterSet([ServingFixtures.adapter(seed: 21, config: c, rank: 8)])
        let a2 = AdapterSet([ServingFixtures.adapter(seed: 22, config: c)])
        let tok = lm.tokenizer
        let prompts = [tok.encode("The capital of France is", addSpecialTokens: true),
                       tok.encode("def fib(n):", addSpecialTokens: true),
                       tok.encode("Order 17 of blue widgets", addSpecialTokens: true)]
        let sets = [a1, a1, a2]
        let chunk = 16, steps = 4
        var solo: [BatchInvarianceTests.Driver] = []
        for (p, s) in zip(prompts, sets) {
            let d = BatchInvarianceTests.Driver(model: m, prompt: p, adapters: s, chunk: chunk, steps: steps)
            try BatchInvarianceTests.run([d], joins: [0], steps: steps)
            solo.append(d)
        }
        let together = zip(prompts, sets).map { BatchInvarianceTests.Driver(model: m, prompt: $0, adapters: $1, chunk: chunk, steps: steps) }
        try BatchInvarianceTests.run(together, joins: [0, 0, 0], steps: steps)
        for i in 0..<3 {
            XCTAssertEqual(together[i].tokens, solo[i].tokens, "sequence \(i)")
            for s in 0..<steps {
                XCTAssertTrue(together[i].logits[s].elementsEqual(solo[i].logits[s]) { $0.bitPattern == $1.bitPattern },
                              "sequence \(i), step \(s): logits differ when decoding beside a sequence on its adapter")
            }
        }
    }
}
