import XCTest
import Kernels

/// `HugePages` is a hint: the arrays it makes hold what they should whether or not the kernel backs them
/// with huge pages, and advising a buffer of any size or alignment is harmless. (Whether pages were
/// granted is a speed matter, measured by `lora bench decode`, not a correctness one.)
final class HugePagesTests: XCTestCase {
    func testSizeIsZeroOrAPowerOfTwo() {
        let s = HugePages.size
        XCTAssert(s == 0 || (s >= 4096 && s & (s - 1) == 0), "\(s)")
    }

    func testCopyHoldsTheBytesAtEverySize() {
        let huge = max(HugePages.size, 1 << 21)
        for count in [0, 1, 4095, huge - 1, huge, 2 * huge + 12345] {
            let source = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
            let copy = source.withUnsafeBytes { HugePages.copy($0) }
            XCTAssertEqual(copy, source, "count \(count)")
        }
    }

    func testZerosAreZerosAndWritable() {
        let huge = max(HugePages.size, 1 << 21)
        for count in [0, 3, huge / 4 + 1, 3 * huge / 4 + 7] {
            var z = HugePages.zeros(Float.self, count: count)
            XCTAssertEqual(z.count, count)
            XCTAssert(z.allSatisfy { $0 == 0 && $0.sign == .plus })
            if count > 0 { z[count - 1] = 1.5; XCTAssertEqual(z[count - 1], 1.5) }
            XCTAssertEqual(HugePages.zeros(UInt16.self, count: count), [UInt16](repeating: 0, count: count))
        }
    }

    func testAdvisingAnyRangeIsHarmless() {
        let huge = max(HugePages.size, 1 << 21)
        let p = UnsafeMutableRawPointer.allocate(byteCount: 3 * huge, alignment: 64)
        defer { p.deallocate() }
        for (offset, bytes) in [(0, 0), (1, 100), (7, huge), (huge - 1, huge + 2), (0, 3 * huge)] {
            HugePages.advise(p + offset, bytes: bytes)
        }
        p.initializeMemory(as: UInt8.self, repeating: 7, count: 3 * huge)
        XCTAssertEqual(p.load(fromByteOffset: 3 * huge - 1, as: UInt8.self), 7)
    }
}
