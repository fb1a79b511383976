import Model
import TestSupport
import XCTest

/// The vectorized greedy pick gives its plain twin's id on every input: random logits of the
/// vocabulary's size and odd sizes, ties (the lowest id wins), the maximum in the tail after the
/// last full vector, infinities, and NaNs (never chosen, except at id 0, which then wins).
final class SamplerArgmaxTests: XCTestCase {
    func check(_ logits: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        logits.withUnsafeBufferPointer { l in
            XCTAssertEqual(Sampler.argmax(l.baseAddress!, count: l.count), Sampler.argmaxReference(l.baseAddress!, count: l.count),
                           what, file: file, line: line)
        }
    }

    func testMatchesThePlainLoopOnRandomTiedAndSpecialInputs() {
        var rng = TestRNG(seed: 23)
        for n in [1, 2, 7, 8, 15, 16, 17, 23, 24, 31, 100, 1001, 49_152, 49_155] {
            check((0..<n).map { _ in rng.uniform(scale: 8) }, "random, n \(n)")
            check((0..<n).map { _ in Float(rng.index(below: 4)) }, "few values (ties), n \(n)")
            check([Float](repeating: -2.5, count: n), "all equal, n \(n)")
            check([Float](repeating: -.infinity, count: n), "all -inf, n \(n)")
            // The maximum at each position of interest, and a tie for it further on.
            for at in Set([0, n / 2, n - 1, max(0, n - 3)]) {
                var l = (0..<n).map { _ in rng.uniform() }
                l[at] = 5
                check(l, "max at \(at), n \(n)")
                if at + 9 < n { l[at + 9] = 5; check(l, "max at \(at) tied at \(at + 9), n \(n)") }
                var withNaN = l
                withNaN[(at + 1) % n] = .nan
                check(withNaN, "NaN beside the max at \(at), n \(n)")
                withNaN[0] = .nan
                check(withNaN, "NaN at id 0, max at \(at), n \(n)")
            }
            var inf = (0..<n).map { _ in rng.uniform() }
            inf[n - 1] = .infinity
            check(inf, "+inf last, n \(n)")
        }
    }

    func testTheFirstOfEqualMaximaAcrossVectorLanesWins() {
        // Equal maxima in different lanes of later vectors than the first: the lowest id, not the lowest lane.
        var l = [Float](repeating: 0, count: 64)
        l[37] = 1; l[18] = 1; l[60] = 1
        l.withUnsafeBufferPointer { XCTAssertEqual(Sampler.argmax($0.baseAddress!, count: 64), 18) }
        var nan = [Float](repeating: .nan, count: 40)
        nan[0] = -1; nan[33] = 0
        nan.withUnsafeBufferPointer { XCTAssertEqual(Sampler.argmax($0.baseAddress!, count: 40), 33, "NaNs after id 0 are passed over") }
    }
}
