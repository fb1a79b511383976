import Model
import TestSupport
import XCTest

/// The sampler's in-place candidate sort gives `Array.sort`'s order (logit descending, lower id first
/// on ties; a strict total order, so exactly one answer), whatever path it takes.
final class SamplerSortTests: XCTestCase {
    func check(_ logits: [Float], depthLimit: Int? = nil, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let expected = Array(logits.indices).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        var got = Array(logits.indices)
        logits.withUnsafeBufferPointer { l in
            got.withUnsafeMutableBufferPointer { Sampler.sortCandidates($0, l.baseAddress!, depthLimit: depthLimit) }
        }
        XCTAssertEqual(got, expected, what, file: file, line: line)
    }

    func testMatchesArraySortOnRandomTiedSortedAndVocabularySizedInputs() {
        var rng = TestRNG(seed: 17)
        for n in [0, 1, 2, 3, 15, 16, 17, 18, 100, 1000, 49_152] {
            check((0..<n).map { _ in rng.uniform(scale: 4) }, "random, n \(n)")
            // Few distinct values: long runs of ties, ordered by id.
            check((0..<n).map { _ in Float(rng.index(below: 5)) }, "ties, n \(n)")
            check((0..<n).map { Float($0) }, "ascending, n \(n)")
            check((0..<n).map { Float(-$0) }, "descending, n \(n)")
            check([Float](repeating: 1.5, count: n), "all equal, n \(n)")
            // The heapsort fallback, taken at once and after a few quicksort levels.
            check((0..<n).map { _ in Float(rng.index(below: 7)) }, depthLimit: 0, "heapsort, n \(n)")
            check((0..<n).map { _ in rng.uniform() }, depthLimit: 3, "shallow, n \(n)")
        }
        check([-Float.infinity, 0, .infinity, -Float.infinity, .infinity], "infinities")
    }
}
