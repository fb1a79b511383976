/// `torch.Tensor.mean()` of a contiguous fp32 vector, reproduced bit for bit.
///
/// Double quantization's offset is `absmax.mean()` in PyTorch, and the nested 8-bit state depends on
/// every bit of it, so the summation order matters. PyTorch's CPU sum (aten/src/ATen/native/cpu/
/// SumKernel.cpp, `cascade_sum`) accumulates fp32 in fp32 with a 4-level cascade over 4 interleaved
/// accumulators of 8-lane vectors, then the mean divides by n in fp32. Above 32,768 elements
/// (`GRAIN_SIZE`) with more than one intra-op thread, `two_pass_reduction` sums ceil(n / threads) chunks
/// separately and adds them in order. Checked against torch 2.15 (AVX512 capability, vector kernels of
/// 8 lanes) on random vectors of 1..200,000 elements: identical bits.
public enum BlockwiseTorchMean {
    /// PyTorch's `internal::GRAIN_SIZE`.
    public static let grainSize = 32_768

    /// The mean of `x` as torch computes it with `threads` intra-op threads.
    public static func mean(_ x: UnsafeBufferPointer<Float>, threads: Int) -> Float {
        let n = x.count
        if n == 0 { return .nan }
        var total: Float = 0
        if n < grainSize || threads <= 1 {
            total = total + sum(x.baseAddress!, n)
        } else {
            let tasks = min(threads, (n + grainSize - 1) / grainSize)
            let chunk = (n + tasks - 1) / tasks
            var start = 0
            while start < n {
                let len = min(chunk, n - start)
                total = total + sum(x.baseAddress! + start, len)
                start += len
            }
        }
        return total / Float(n)
    }

    static func ceilLog2(_ x: Int) -> Int {
        if x <= 2 { return 1 }
        return (Int.bitWidth - (x - 1).leadingZeroBitCount)
    }

    /// One serial `cascade_sum` over x[n]; the result is added to a zero output, as torch stores it.
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        typealias V = SIMD8<Float>
        if n < V.scalarCount {
            // scalar_inner_sum: row_sum over scalars.
            // Lane 0 carries the scalar sum; the other lanes stay zero.
            var p = multiRowSum(rows: n / 4) { i, k in V(x[i * 4 + k], 0, 0, 0, 0, 0, 0, 0) }
            var s = p[0][0]
            for i in (n / 4 * 4)..<n { s += x[i] }
            for k in 1..<4 { s += p[k][0] }
            p[0][0] = s
            return 0 + s
        }
        let vecs = n / V.scalarCount
        let raw = UnsafeRawPointer(x)
        func load(_ v: Int) -> V { raw.loadUnaligned(fromByteOffset: v * 32, as: V.self) }
        // row_sum over vectors: 4 interleaved accumulators, then the leftover vectors into the first.
        var p = multiRowSum(rows: vecs / 4) { i, k in load(i * 4 + k) }
        for i in (vecs / 4 * 4)..<vecs { p[0] += load(i) }
        for k in 1..<4 { p[0] += p[k] }
        var acc: Float = 0
        for i in (vecs * V.scalarCount)..<n { acc += x[i] }
        for lane in 0..<V.scalarCount { acc += p[0][lane] }
        return acc
    }

    /// `multi_row_sum` with 4 rows: a 4-level cascade whose level step is 2^max(4, ceil(log2 rows) / 4).
    static func multiRowSum(rows size: Int, _ load: (Int, Int) -> SIMD8<Float>) -> [SIMD8<Float>] {
        typealias S = SIMD8<Float>
        let levels = 4
        let power = max(4, ceilLog2(size) / levels)
        let step = 1 << power
        let mask = step - 1
        var acc = [[S]](repeating: [S](repeating: .zero, count: 4), count: levels)
        var i = 0
        while i + step <= size {
            for _ in 0..<step {
                for k in 0..<4 { acc[0][k] += load(i, k) }
                i += 1
            }
            for j in 1..<levels {
                for k in 0..<4 {
                    acc[j][k] += acc[j - 1][k]
                    acc[j - 1][k] = .zero
                }
                if (i & (mask << (j * power))) != 0 { break }
            }
        }
        while i < size {
            for k in 0..<4 { acc[0][k] += load(i, k) }
            i += 1
        }
        for j in 1..<levels { for k in 0..<4 { acc[0][k] += acc[j][k] } }
        return acc[0]
    }
}
