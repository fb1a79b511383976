import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The counter of the allocation-counting library (`libLoraAllocCounter.so`, target AllocCounter) when
/// the process runs with it preloaded (`LD_PRELOAD`): every malloc, calloc, realloc, posix_memalign,
/// aligned_alloc, memalign and valloc call of every thread since the process started. Swift has no
/// allocation hook; interposing the C allocator counts what the Swift runtime allocates, too.
public struct AllocationCounter {
    private let read: @convention(c) () -> UInt

    /// The preloaded counter, or nil when the library is not in the process.
    public static func preloaded() -> AllocationCounter? {
        guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "lora_alloc_count") else { return nil }
        return AllocationCounter(read: unsafeBitCast(symbol, to: (@convention(c) () -> UInt).self))
    }

    /// Allocation calls so far.
    public var count: UInt { read() }

    /// Allocations `body` made (on every thread while it ran).
    public func allocations(_ body: () throws -> Void) rethrows -> UInt {
        let before = count
        try body()
        return count &- before
    }
}
