/// A fixed-size, manually managed float buffer for hot loops (no copy-on-write, no bounds checks
/// in release builds). Owned by a class (a workspace or cache) that frees it.
public struct FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var count: Int

    public init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    /// Grows (never shrinks) to hold at least `count` floats; contents are not preserved.
    public mutating func reserve(_ count: Int) {
        if count <= self.count { return }
        pointer.deallocate()
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
        self.count = count
    }

    public func free() { pointer.deallocate() }
}
