/// Keys and values of every layer for one sequence: per layer [capacity, Hk*E], rows by position.
public final class KVCache {
    public let numLayers: Int
    public let kvDim: Int
    public let capacity: Int
    /// Positions 0..<count hold valid keys and values.
    public internal(set) var count: Int = 0
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    public init(config: LlamaConfig, capacity: Int) {
        numLayers = config.numLayers
        kvDim = config.kvDim
        self.capacity = capacity
        keys = (0..<config.numLayers).map { _ in .allocate(capacity: capacity * config.kvDim) }
        values = (0..<config.numLayers).map { _ in .allocate(capacity: capacity * config.kvDim) }
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Forgets every position (the buffers are reused).
    public func reset() { count = 0 }

    /// Keeps positions 0..<n only.
    public func truncate(to n: Int) { count = min(count, max(0, n)) }

    public var residentBytes: Int { 2 * numLayers * capacity * kvDim * MemoryLayout<Float>.size }
}
