import Foundation
import Kernels

extension ModelBenchmark {
    /// The machine's bounds the figures are compared with (`lora bench bounds`, scripts/bench/compare.sh):
    /// - `sgemm_gflops`: OpenBLAS sgemm at training's frozen-weight shape, [B*T, D] · [F, D]ᵀ
    ///   (1024 x 576 by 576 x 1536), 2·M·N·K flops per call;
    /// - `memory_read_gb_per_s`: a 256 MiB buffer (well past any L3) summed by every thread of the
    ///   budget, each its own contiguous part, bytes read per second.
    public func bounds() -> [Figure] {
        [sgemmBound(m: shape.batch * shape.sequenceLength, n: 1536, k: 576), memoryReadBound(bytes: 256 << 20)]
    }

    func sgemmBound(m: Int, n: Int, k: Int) -> Figure {
        let a = (0..<(m * k)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
        let b = (0..<(n * k)).map { Float(($0 * 104_729) % 1000) / 1000 - 0.5 }
        var c = [Float](repeating: 0, count: m * n)
        let calls = 4
        return measure("sgemm_gflops", unit: "GFLOP/s") {
            let secs = a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        Self.seconds {
                            for _ in 0..<calls {
                                BLAS.sgemm(transB: true, m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                            }
                        }
                    }
                }
            }
            return (Double(calls) * 2 * Double(m * n * k) / 1e9, secs)
        }
    }

    func memoryReadBound(bytes: Int) -> Figure {
        let count = bytes / MemoryLayout<Float>.size
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        for i in 0..<count { buffer[i] = Float(i & 1023) }   // touched: resident before timing
        let threads = Parallel.threads
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: threads)
        defer { sums.deallocate() }
        let passes = 4
        return measure("memory_read_gb_per_s", unit: "GB/s") {
            let secs = Self.seconds {
                for _ in 0..<passes {
                    Parallel.forEachChunk(threads, minChunk: 1) { parts in
                        for p in parts {
                            let lo = count / threads * p, hi = p == threads - 1 ? count : count / threads * (p + 1)
                            var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>(), acc2 = SIMD8<Float>(), acc3 = SIMD8<Float>()
                            let raw = UnsafeRawPointer(buffer)
                            var o = lo * 4
                            while o + 128 <= hi * 4 {
                                acc0 += raw.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                                acc1 += raw.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self)
                                acc2 += raw.loadUnaligned(fromByteOffset: o + 64, as: SIMD8<Float>.self)
                                acc3 += raw.loadUnaligned(fromByteOffset: o + 96, as: SIMD8<Float>.self)
                                o += 128
                            }
                            sums[p] = ((acc0 + acc1) + (acc2 + acc3)).sum()   // kept, so the loads are not dropped
                        }
                    }
                }
            }
            return (Double(passes) * Double(count * 4) / 1e9, secs)
        }
    }
}
