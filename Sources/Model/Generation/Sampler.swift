import Foundation

/// How the next token is chosen. `temperature == 0` is greedy (argmax); otherwise sampling with
/// transformers' warper order: temperature, then top-k, then top-p.
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float
    public var topK: Int?
    public var topP: Float?
    public var seed: UInt64?

    public init(temperature: Float = 0, topK: Int? = nil, topP: Float? = nil, seed: UInt64? = nil) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
    }

    public static let greedy = SamplingParameters()

    public func validate() throws {
        if !(temperature >= 0) || !temperature.isFinite { throw ModelError.invalidArgument("temperature must be >= 0, got \(temperature)") }
        if let k = topK, k < 1 { throw ModelError.invalidArgument("top-k must be >= 1, got \(k)") }
        if let p = topP, !(p > 0 && p <= 1) { throw ModelError.invalidArgument("top-p must be in (0, 1], got \(p)") }
    }
}

/// xoshiro256** seeded through SplitMix64: a small, fast, reproducible generator.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Codable, Equatable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitmix(_ z: inout UInt64) -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var r = z
            r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
            r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
            return r ^ (r >> 31)
        }
        s = (splitmix(&z), splitmix(&z), splitmix(&z), splitmix(&z))
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 bits, like a float draw.
    public mutating func nextUnitFloat() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    public static func == (a: Self, b: Self) -> Bool { a.s == b.s }

    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        s = (try c.decode(UInt64.self), try c.decode(UInt64.self), try c.decode(UInt64.self), try c.decode(UInt64.self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(s.0); try c.encode(s.1); try c.encode(s.2); try c.encode(s.3)
    }
}

/// Picks tokens from logits. Holds its RNG, so one sampler serves one sequence.
public struct Sampler {
    public let parameters: SamplingParameters
    private var rng: SeededGenerator
    private var order: [Int] = []
    private var probs: [Double] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SeededGenerator(seed: parameters.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Argmax; the lowest id wins a tie, as torch.argmax does. A NaN logit is never chosen, except
    /// at id 0, which then wins (what `argmaxReference`'s running comparison gives). In two vector
    /// passes: the largest non-NaN value (8 lanes of running maxima; max is exact, so the lane split
    /// changes nothing), then its first id, so the answer is `argmaxReference`'s, bit for bit. (The
    /// serving step runs it once per decode row over the 49,152 logits: the plain loop's compare and
    /// branch per logit cost about as much as a tenth of the output head.)
    public static func argmax(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        let w = 8
        guard count >= 2 * w, !logits[0].isNaN else { return argmaxReference(logits, count: count) }
        let raw = UnsafeRawPointer(logits)
        // Lanes start at -inf and take a value only when it is larger (a NaN compares false), so no
        // lane holds a NaN and -inf stands for "nothing larger seen".
        var acc = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + w <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc.replace(with: v, where: acc .< v)
            i += w
        }
        var m = acc.max()
        while i < count { if logits[i] > m { m = logits[i] }; i += 1 }
        // The first id holding m: logits[0] is not NaN, so m >= logits[0] and some id holds it.
        let target = SIMD8<Float>(repeating: m)
        i = 0
        while i + w <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            if any(v .== target) { break }
            i += w
        }
        while i < count && logits[i] != m { i += 1 }
        return i
    }

    /// The plain twin of `argmax`: one running comparison, the first of equal maxima kept.
    public static func argmaxReference(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        var m = logits[0]
        for i in 1..<count where logits[i] > m { m = logits[i]; best = i }
        return best
    }

    public mutating func sample(_ logits: UnsafePointer<Float>, count v: Int) -> Int {
        let p = parameters
        if p.temperature == 0 { return Sampler.argmax(logits, count: v) }
        // Candidates sorted by logit, descending (stable: lower id first on ties).
        if order.count != v { order = Array(0..<v) } else { for i in 0..<v { order[i] = i } }
        order.withUnsafeMutableBufferPointer { Sampler.sortCandidates($0, logits) }
        var keep = v
        if let k = p.topK, k < v {
            // transformers keeps every token whose logit is >= the k-th largest.
            let kth = logits[order[k - 1]]
            keep = k
            while keep < v && logits[order[keep]] >= kth { keep += 1 }
        }
        // Softmax of logit / temperature over the kept candidates, in Double after max-subtraction.
        let invT = 1 / Double(p.temperature)
        let m = Double(logits[order[0]]) * invT
        if probs.count < keep { probs = [Double](repeating: 0, count: keep) }   // once: keep <= v
        var sum = 0.0
        for i in 0..<keep { let e = exp(Double(logits[order[i]]) * invT - m); probs[i] = e; sum += e }
        for i in 0..<keep { probs[i] /= sum }
        if let topP = p.topP, topP < 1 {
            // transformers drops tokens whose ascending cumulative probability is <= 1 - top_p,
            // which keeps the smallest descending prefix reaching top_p (and always the top token).
            var tail = 0.0
            var cut = keep
            while cut > 1 {
                let next = tail + probs[cut - 1]
                if next <= 1 - Double(topP) { tail = next; cut -= 1 } else { break }
            }
            keep = cut
            var s2 = 0.0
            for i in 0..<keep { s2 += probs[i] }
            for i in 0..<keep { probs[i] /= s2 }
        }
        let r = rng.nextUnitFloat()
        var acc = 0.0
        for i in 0..<keep {
            acc += probs[i]
            if r < acc { return order[i] }
        }
        return order[keep - 1]
    }

    /// Sorts candidate ids by logit, descending, the lower id first on equal logits: a strict total
    /// order, so the result is the one `Array.sort` gives, but in place (introsort: quicksort with a
    /// median of three, insertion sort below 16, heapsort past a depth limit), so sampling allocates
    /// nothing per token (`Array.sort` allocates a merge buffer of half the vocabulary every call).
    /// `depthLimit` (tests): quicksort levels before heapsort takes over; default 2 log2(n).
    public static func sortCandidates(_ o: UnsafeMutableBufferPointer<Int>, _ logits: UnsafePointer<Float>, depthLimit: Int? = nil) {
        guard o.count > 1 else { return }
        var depth = 0
        var n = o.count
        while n > 1 { depth += 2; n >>= 1 }
        introsort(o.baseAddress!, 0, o.count, depthLimit ?? depth, logits)
    }

    /// Whether id a comes before id b.
    @inline(__always)
    static func before(_ a: Int, _ b: Int, _ logits: UnsafePointer<Float>) -> Bool {
        let x = logits[a], y = logits[b]
        return x > y || (x == y && a < b)
    }

    private static func introsort(_ o: UnsafeMutablePointer<Int>, _ lo: Int, _ hi: Int, _ depth: Int, _ logits: UnsafePointer<Float>) {
        var lo = lo, depth = depth
        while hi - lo > 16 {
            if depth == 0 { heapsort(o + lo, hi - lo, logits); return }
            depth -= 1
            // Median of three to o[lo], then Hoare-style partition around it.
            let mid = lo + (hi - lo) / 2
            if before(o[mid], o[lo], logits) { swap(&o[mid], &o[lo]) }
            if before(o[hi - 1], o[lo], logits) { swap(&o[hi - 1], &o[lo]) }
            if before(o[hi - 1], o[mid], logits) { swap(&o[hi - 1], &o[mid]) }
            swap(&o[lo], &o[mid])   // the median as the pivot, at lo
            let pivot = o[lo]
            var i = lo, j = hi
            while true {
                repeat { i += 1 } while i < hi && before(o[i], pivot, logits)
                repeat { j -= 1 } while before(pivot, o[j], logits)
                if i >= j { break }
                swap(&o[i], &o[j])
            }
            swap(&o[lo], &o[j])
            // Recurse into the smaller side, loop on the larger (stack depth O(log n)).
            if j - lo < hi - (j + 1) {
                introsort(o, lo, j, depth, logits)
                lo = j + 1
            } else {
                introsort(o, j + 1, hi, depth, logits)
                return introsort(o, lo, j, depth, logits)
            }
        }
        // Insertion sort of the short rest.
        var k = lo + 1
        while k < hi {
            let x = o[k]
            var m = k
            while m > lo && before(x, o[m - 1], logits) { o[m] = o[m - 1]; m -= 1 }
            o[m] = x
            k += 1
        }
    }

    private static func heapsort(_ o: UnsafeMutablePointer<Int>, _ n: Int, _ logits: UnsafePointer<Float>) {
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while true {
                var child = 2 * root + 1
                if child >= end { return }
                if child + 1 < end && before(o[child], o[child + 1], logits) { child += 1 }
                if before(o[root], o[child], logits) { swap(&o[root], &o[child]); root = child } else { return }
            }
        }
        var start = n / 2 - 1
        while start >= 0 { siftDown(start, n); start -= 1 }
        var end = n - 1
        while end > 0 { swap(&o[0], &o[end]); siftDown(0, end); end -= 1 }
    }
}
