#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A per-thread fp32 scratch slot for work split over the pool whose pieces each need their own buffer
/// (attention's score blocks, dequantized weight tiles, quantized decode activations): each thread's
/// buffer grows to the largest request, is freed when the thread exits, and is never shared. Every
/// instance is a slot of its own (its own thread-specific key), so a caller holding one slot's buffer
/// never sees it overwritten through another slot. Allocates only when a thread's buffer must grow.
public final class ThreadScratch: Sendable {
    /// Attention's per-task score blocks (`LlamaModel.attention`).
    public static let attention = ThreadScratch()

    private final class Buffer {
        var pointer: UnsafeMutablePointer<Float>
        var capacity: Int
        init(_ n: Int) { capacity = n; pointer = .allocate(capacity: n) }
        deinit { pointer.deallocate() }
    }

    private let key: pthread_key_t

    public init() {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            guard let raw else { return }
            Unmanaged<Buffer>.fromOpaque(raw).release()
        }
        key = k
    }

    /// The calling thread's buffer of this slot, at least `count` floats long. Contents are unspecified.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if let raw = pthread_getspecific(key) {
            let buffer = Unmanaged<Buffer>.fromOpaque(raw).takeUnretainedValue()
            if buffer.capacity < count {
                buffer.pointer.deallocate()
                buffer.pointer = .allocate(capacity: count)
                buffer.capacity = count
            }
            return buffer.pointer
        }
        let buffer = Buffer(max(count, 1))
        pthread_setspecific(key, Unmanaged.passRetained(buffer).toOpaque())
        return buffer.pointer
    }
}
