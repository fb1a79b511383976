/// The one deterministic generator of the test suite (a 64-bit LCG with Knuth's MMIX constants):
/// tiny models, kernel inputs and fixture adapters are drawn from it, so a seed names the same
/// values on every machine. Not for statistics: draws are only "varied enough" test data.
public struct TestRNG {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }

    /// Uniform in [-scale, scale), 24 bits.
    public mutating func uniform(scale: Float = 1) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }

    /// n draws of `uniform(scale:)`.
    public mutating func uniform(_ n: Int, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in uniform(scale: scale) }
    }

    /// Uniform in [-1, 1] from the high 31 bits as a signed integer (the registry fixtures' adapters).
    public mutating func signedUnit() -> Float {
        Float(Int32(truncatingIfNeeded: next() >> 33)) / Float(Int32.max)
    }

    /// Uniform integer in 0..<bound.
    public mutating func index(below bound: Int) -> Int { Int(next() >> 33) % bound }
}
