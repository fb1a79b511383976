import Foundation
import Kernels
import Quantization
import XCTest

/// Decoding throughput of the fused GEMVs against dense fp32 sgemm (T = 1). Prints timings; asserts only
/// correctness. Run: swift test -c release --filter QuantizationTests.QuantizedGEMVBenchTests
final class QuantizedGEMVBenchTests: XCTestCase {
    func testGEMVTimingsForSmolLM2Shapes() throws {
        for (n, k) in [(576, 1536), (1536, 576)] {
            var rng = TestRNG(UInt64(n + k))
            let data = rng.floats(n * k, scale: 0.05)
            let dense = DenseWeight(outFeatures: n, inFeatures: k, data: data)
            let nf4 = try NF4Weight(outFeatures: n, inFeatures: k, data: data)
            let int8 = try Int8Weight(outFeatures: n, inFeatures: k, data: data)
            // GGUF blocks of the same shape (random bytes: only the speed matters here).
            let q41 = try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: (0..<(n * k / 32 * 20)).map { i in i % 20 == 1 || i % 20 == 3 ? 0x20 : UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) })
            let q80 = try Q8_0Weight(outFeatures: n, inFeatures: k, blocks: (0..<(n * k / 32 * 34)).map { i in i % 34 == 1 ? 0x20 : UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) })
            let x = rng.floats(k)
            var y = [Float](repeating: 0, count: n)
            var yRef = y
            // Quantized kernels first: OpenBLAS worker threads keep spinning for a while after an sgemm and
            // would steal the 2 cores from our threads.
            let weights: [(String, LinearWeight)] = [("nf4 fused", nf4), ("int8 fused", int8), ("q4_1 fused", q41), ("q8_0 fused", q80), ("fp32 sgemm", dense)]
            let threads = Parallel.threads
            for (name, w) in weights {
                let secs = time(iterations: 400) { w.forward(x, tokens: 1, into: &y, accumulate: false) }
                // One thread, measured in thread CPU time: robust to other processes on the machine.
                Parallel.configure(threads: 1)
                let cpu = cpuTime(iterations: 400) { w.forward(x, tokens: 1, into: &y, accumulate: false) }
                Parallel.configure(threads: threads)
                let gbs = Double(w.residentBytes) / secs / 1e9
                print(String(format: "GEMV %4dx%-4d %-11@ %8.1f us wall (%d threads) %6.2f GB/s | 1 thread %8.1f us CPU, %5.2f weights/ns",
                             n, k, name as NSString, secs * 1e6, threads, gbs, cpu * 1e6, Double(n * k) / cpu / 1e9))
            }
            // Correctness: the fused path equals its reference twin.
            nf4.forward(x, tokens: 1, into: &y, accumulate: false)
            nf4.forwardReference(x, tokens: 1, into: &yRef, accumulate: false)
            XCTAssertLessThanOrEqual(maxRelativeError(y, yRef), QuantizedKernelChecks.fastVsReferenceRelTolerance)
            int8.forward(x, tokens: 1, into: &y, accumulate: false)
            int8.forwardReference(x, tokens: 1, into: &yRef, accumulate: false)
            XCTAssertLessThanOrEqual(maxRelativeError(y, yRef), QuantizedKernelChecks.fastVsReferenceRelTolerance)
            // Prefill-sized products for scale (T = 64, tiles + sgemm).
            let xs = rng.floats(64 * k)
            var ys = [Float](repeating: 0, count: 64 * n)
            for (name, w) in weights {
                let secs = time(iterations: 20) { w.forward(xs, tokens: 64, into: &ys, accumulate: false) }
                print(String(format: "GEMM T=64 %4dx%-4d %-11@ %8.1f us  %6.2f GFLOP/s", n, k, name as NSString, secs * 1e6, 2.0 * 64 * Double(n * k) / secs / 1e9))
            }
        }
    }

    /// Fastest of 5 runs of the calling thread's CPU time per call.
    private func cpuTime(iterations: Int, _ body: () -> Void) -> Double {
        func now() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }
        for _ in 0..<10 { body() }
        var samples: [Double] = []
        for _ in 0..<5 {
            let start = now()
            for _ in 0..<iterations { body() }
            samples.append((now() - start) / Double(iterations))
        }
        return samples.min()!
    }

    /// Fastest of 5 runs, seconds per call after a warm-up (other processes share the 2 cores).
    private func time(iterations: Int, _ body: () -> Void) -> Double {
        for _ in 0..<10 { body() }
        var samples: [Double] = []
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { body() }
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(iterations))
        }
        return samples.min()!
    }
}
