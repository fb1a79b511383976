import Quantization
import XCTest

final class HalfTests: XCTestCase {
    func testHalfConversionsAreExactOnKnownBitPatterns() {
        XCTAssertEqual(Half.toFloat(0x3C00), 1.0)
        XCTAssertEqual(Half.toFloat(0xC000), -2.0)
        XCTAssertEqual(Half.toFloat(0x0001), Float(5.9604645e-08))  // smallest subnormal, 2^-24
        XCTAssertEqual(Half.toFloat(0x7BFF), 65504)
        XCTAssertTrue(Half.toFloat(0x7C00).isInfinite)
        XCTAssertEqual(Half.bf16ToFloat(0x3F80), 1.0)
        XCTAssertEqual(Half.bf16ToFloat(0xC0A0), -5.0)
        XCTAssertEqual(Half.fromFloat(1.0), 0x3C00)
        XCTAssertEqual(Half.fromFloat(65504), 0x7BFF)
    }
}
