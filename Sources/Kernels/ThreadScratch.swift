#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A per-thread fp32 scratch buffer for work split over the pool whose pieces each need their own
/// (attention's score blocks): grows to the largest request, freed when the thread exits, never shared.
public enum ThreadScratch {
    final class Buffer {
        var pointer: UnsafeMutablePointer<Float>
        var capacity: Int
        init(_ n: Int) { capacity = n; pointer = .allocate(capacity: n) }
        deinit { pointer.deallocate() }
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            guard let raw else { return }
            Unmanaged<Buffer>.fromOpaque(raw).release()
        }
        return k
    }()

    /// The calling thread's buffer, at least `count` floats long. Contents are unspecified.
    public static func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
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
