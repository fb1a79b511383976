import Foundation
import TestSupport
import XCTest

/// Reads Tests/Fixtures/nf4 (written by scripts/fixtures/make_nf4_fixtures.py from bitsandbytes itself).
enum NF4Fixtures {
    static let dir = TestPaths.fixture("nf4")

    static func index() throws -> [String: Any] {
        let data = try Data(contentsOf: dir.appendingPathComponent("index.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func cases() throws -> [String: [String: Any]] {
        try XCTUnwrap(index()["cases"] as? [String: [String: Any]])
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
    }

    /// Little-endian fp32 array.
    static func floats(_ name: String) throws -> [Float] {
        let b = try bytes(name)
        return stride(from: 0, to: b.count, by: 4).map { i in
            Float(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)
        }
    }

    /// The "lcg" case's weights, computed as the fixture script does (every step exact or fp32-rounded).
    static func lcgWeight(rows: Int, cols: Int) -> [Float] {
        (0..<(rows * cols)).map { i in
            let v = UInt32(truncatingIfNeeded: UInt64(i) &* 2_654_435_761 &+ 12345)
            let u = Float(v) * Float(1.0 / 4_294_967_296.0)
            let scale = Float(0.01) * (Float(1) + Float((i >> 10) & 7))
            return (u - Float(0.5)) * scale
        }
    }

    static func fnv1a64(_ data: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }
}
