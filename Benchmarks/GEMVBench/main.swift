import Foundation
import Kernels
import Quantization

// Decoding GEMV throughput of the fused quantized kernels against dense fp32 sgemm at SmolLM2-135M's
// MLP shapes (T = 1), and prefill-sized products (T = 64) for scale. Timings only: the kernels'
// correctness is checked by QuantizationTests. Run: bash scripts/bench/gemv.sh
// Absolute figures on a shared 2-core machine vary by 30% or more between runs; compare kernels
// within one run.

/// Deterministic inputs (a 64-bit LCG): the benchmark measures speed, the values only need variety.
struct LCG {
    var state: UInt64
    mutating func uniform(_ n: Int, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }
}

/// Fastest of 5 runs of the calling thread's CPU time per call (robust to other processes).
func cpuTime(iterations: Int, _ body: () -> Void) -> Double {
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

/// Fastest of 5 runs, wall seconds per call after a warm-up.
func wallTime(iterations: Int, _ body: () -> Void) -> Double {
    for _ in 0..<10 { body() }
    var samples: [Double] = []
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations { body() }
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(iterations))
    }
    return samples.min()!
}

for (n, k) in [(576, 1536), (1536, 576)] {
    var rng = LCG(state: UInt64(n + k))
    let data = rng.uniform(n * k, scale: 0.05)
    let dense = DenseWeight(outFeatures: n, inFeatures: k, data: data)
    let nf4 = try NF4Weight(outFeatures: n, inFeatures: k, data: data)
    let int8 = try Int8Weight(outFeatures: n, inFeatures: k, data: data)
    // GGUF blocks of the same shape (arbitrary bytes with small f16 scales: only the speed matters).
    let q41 = try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: (0..<(n * k / 32 * 20)).map { i in
        i % 20 == 1 || i % 20 == 3 ? 0x20 : UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) })
    let q80 = try Q8_0Weight(outFeatures: n, inFeatures: k, blocks: (0..<(n * k / 32 * 34)).map { i in
        i % 34 == 1 ? 0x20 : UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) })
    let x = rng.uniform(k)
    var y = [Float](repeating: 0, count: n)
    // Quantized kernels first: OpenBLAS's worker threads keep spinning for a while after an sgemm.
    let weights: [(String, LinearWeight)] = [("nf4 fused", nf4), ("int8 fused", int8), ("q4_1 fused", q41),
                                             ("q8_0 fused", q80), ("fp32 sgemm", dense)]
    let threads = Parallel.threads
    for (name, w) in weights {
        let secs = wallTime(iterations: 400) { w.forward(x, tokens: 1, into: &y, accumulate: false) }
        Parallel.configure(threads: 1)
        let cpu = cpuTime(iterations: 400) { w.forward(x, tokens: 1, into: &y, accumulate: false) }
        Parallel.configure(threads: threads)
        print(String(format: "GEMV %4dx%-4d %-11@ %8.1f us wall (%d threads) %6.2f GB/s | 1 thread %8.1f us CPU, %5.2f weights/ns",
                     n, k, name as NSString, secs * 1e6, threads, Double(w.residentBytes) / secs / 1e9, cpu * 1e6,
                     Double(n * k) / cpu / 1e9))
    }
    let xs = rng.uniform(64 * k)
    var ys = [Float](repeating: 0, count: 64 * n)
    for (name, w) in weights {
        let secs = wallTime(iterations: 20) { w.forward(xs, tokens: 64, into: &ys, accumulate: false) }
        print(String(format: "GEMM T=64 %4dx%-4d %-11@ %8.1f us  %6.2f GFLOP/s", n, k, name as NSString, secs * 1e6,
                     2.0 * 64 * Double(n * k) / secs / 1e9))
    }
}
