#if canImport(Glibc)
import Glibc
#endif

/// Transparent huge pages for large, long-lived buffers that are read whole at every step (an
/// adapter's matrices: with 8 adapters in a serving step, 157 MB streamed from DRAM per step). With
/// 4 KiB pages every 4 KiB of such a stream costs a page walk; a 2 MiB page costs one per 2 MiB.
/// Linux backs memory with huge pages only where asked (`transparent_hugepage/enabled` is `madvise`
/// on Debian's kernels), and only for pages not yet touched: advise a buffer before writing it.
public enum HugePages {
    /// The huge page size (`hpage_pmd_size`, 2 MiB on x86-64), 0 where there is none.
    public static let size: Int = {
        #if os(Linux)
        guard let f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 32)
        guard fgets(&line, Int32(line.count), f) != nil,
              let value = Int(String(cString: line).filter(\.isNumber)) else { return 0 }
        return value > 0 && value & (value - 1) == 0 ? value : 0
        #else
        return 0
        #endif
    }()

    /// Asks for huge pages over the whole huge pages inside [p, p + bytes) (`madvise(MADV_HUGEPAGE)`): a
    /// hint, without effect where the kernel has no transparent huge pages or a buffer spans none.
    public static func advise(_ p: UnsafeMutableRawPointer, bytes: Int) {
        #if os(Linux)
        let huge = size
        guard huge > 0, bytes >= huge else { return }
        let lo = (UInt(bitPattern: p) + UInt(huge) - 1) & ~UInt(huge - 1)
        let hi = (UInt(bitPattern: p) + UInt(bytes)) & ~UInt(huge - 1)
        if hi > lo { _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), Int(hi - lo), MADV_HUGEPAGE) }
        #endif
    }

    /// A copy of `bytes` in an array whose storage was advised before it was written.
    public static func copy(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, n in
            if let base = buffer.baseAddress {
                advise(base, bytes: bytes.count)
                base.update(from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: bytes.count)
            }
            n = bytes.count
        }
    }

    /// `count` zeros in an array whose storage was advised before it was written.
    public static func zeros<T: Numeric>(_ type: T.Type, count: Int) -> [T] {
        [T](unsafeUninitializedCapacity: count) { buffer, n in
            if let base = buffer.baseAddress { advise(base, bytes: count * MemoryLayout<T>.stride) }
            buffer.initialize(repeating: 0)
            n = count
        }
    }
}
