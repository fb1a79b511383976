import Foundation
import XCTest

/// Floating-point tolerances derived from the arithmetic, shared by every test target.
///
/// fp32's unit roundoff is u = 2⁻²⁴. A sum of K products accumulated in fp32, in any order, is
/// within γ_K · Σ|aᵢbᵢ| of the exact sum, γ_K = K·u / (1 − K·u) (Higham, *Accuracy and Stability of
/// Numerical Algorithms*, §3.1); two different fp32 orders (OpenBLAS picks kernels, and so
/// summation orders, by matrix size and by CPU) are within 2·γ_K · Σ|aᵢbᵢ| of each other. A
/// network chains such products: to first order their relative errors add, so a chain of n
/// products with inner dimensions at most K is within n · 2·γ_K (relative, in norm) of another
/// order's result. Nothing here is tuned on one machine: a bound is computed from K and n.
public enum FP32 {
    /// u = 2⁻²⁴.
    public static let unitRoundoff = 0x1p-24

    /// γ_K = K·u / (1 − K·u): the relative bound of one fp32 sum of K terms.
    public static func gamma(_ k: Int) -> Double {
        let ku = Double(max(k, 1)) * unitRoundoff
        return ku / (1 - ku)
    }

    /// n fp32 roundings in a row, each at most u relative: n·u (for elementwise formulas).
    public static func roundings(_ n: Int) -> Double { Double(n) * unitRoundoff }

    /// Two fp32 evaluations of the same sum of K terms in different orders: 2·γ_K, relative to Σ|terms|.
    public static func reordered(terms k: Int) -> Double { 2 * gamma(k) }

    /// Two fp32 orders of a product whose K terms are zero-mean random test data, relative to the
    /// result's largest value: Σ|aᵢbᵢ| is then about √K times |Σaᵢbᵢ| (the sum is a random walk while
    /// the sum of magnitudes grows like K), so the bound is 2·γ_K·√K. For kernel tests on random inputs.
    public static func randomProduct(terms k: Int) -> Double { reordered(terms: k) * Double(max(k, 1)).squareRoot() }

    /// A chain of `products` dependent matrix products (each inner dimension at most `innerDimension`)
    /// evaluated in two different summation orders: `products` · 2·γ_K, norm-relative.
    public static func chain(products: Int, innerDimension: Int) -> Double {
        Double(products) * reordered(terms: innerDimension)
    }

    /// The same chain with rounding errors that behave as independent random variables (Higham and
    /// Mary, "A New Approach to Probabilistic Rounding Error Analysis", SIAM J. Sci. Comput. 2019): a sum
    /// of K terms is then within λ·√K·u (relative to Σ|terms|) with probability at least 1 − 2·exp(−λ²/2),
    /// and the independent errors of n chained sums add like a random walk, √n times one sum's.
    /// λ = 6 makes a failure a one-in-10⁸ event. For deep models, where the worst case (n·K·u, never
    /// reached in practice) would allow errors of several percent and test nothing.
    public static func probabilisticChain(products: Int, innerDimension: Int) -> Double {
        2 * 6 * Double(max(products, 1)).squareRoot() * Double(max(innerDimension, 1)).squareRoot() * unitRoundoff
    }

    /// Two fp32 forwards of a fixture model (Tests/Fixtures/models: 2 layers, width ≤ 64, FFN ≤ 160;
    /// RandomModel's are smaller) in different summation orders (ours vs transformers, sgemm vs the
    /// KV-cache path): at most 16 dependent products (q/k/v, scores, attention, o, gate/up, down per
    /// layer, the head, LoRA's A and B) over at most 160 terms, relative to the logits' scale.
    public static let tinyModelForward = chain(products: 16, innerDimension: 160)

    /// Two fp32 forwards of the default model (SmolLM2-135M: 30 layers, width 576, FFN 1536) in
    /// different summation orders: 30 · 6 + 1 dependent products over at most 1536 terms, probabilistic.
    public static let defaultModelForward = probabilisticChain(products: 30 * 6 + 1, innerDimension: 1536)
}

/// max |a − b| over the largest |b|: the logits' error relative to their scale.
public func scaledMaxError(_ a: [Float], _ b: [Float]) -> Double { Double(maxRelativeError(a, b)) }

/// ‖a − b‖₂ / ‖b‖₂: one relative error for a whole vector, so entries near zero (cancellation)
/// don't decide the comparison (ggml's test-backend-ops compares by normalized mean squared error).
public func normRelativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "comparing \(a.count) values with \(b.count)")
    var num = 0.0, den = 0.0
    for i in a.indices {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    if den == 0 { return num == 0 ? 0 : .infinity }
    return (num / den).squareRoot()
}

/// max |a − b| / max |b|: the worst entry relative to the largest value (for values of one scale).
public func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "comparing \(a.count) values with \(b.count)")
    var num: Float = 0, den: Float = 0
    for i in a.indices {
        num = max(num, abs(a[i] - b[i]))
        den = max(den, abs(b[i]))
    }
    return num / max(den, .leastNormalMagnitude)
}

/// Asserts ‖actual − expected‖ / ‖expected‖ ≤ tolerance.
public func assertNormRelative(_ actual: [Float], _ expected: [Float], within tolerance: Double,
                               _ message: @autoclosure () -> String = "",
                               file: StaticString = #filePath, line: UInt = #line) {
    let e = normRelativeError(actual, expected)
    XCTAssertLessThanOrEqual(e, tolerance, "norm-relative error \(e) > \(tolerance) \(message())", file: file, line: line)
}

/// Asserts |actual − expected| ≤ tolerance · |expected| (for scalars of order one or more).
public func assertRelative(_ actual: Double, _ expected: Double, within tolerance: Double,
                           _ message: @autoclosure () -> String = "",
                           file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertLessThanOrEqual(abs(actual - expected), tolerance * abs(expected),
                             "\(actual) vs \(expected): relative error above \(tolerance) \(message())", file: file, line: line)
}

extension FP32 {
    /// An NLL is logsumexp(logits) − logit: each term moves by at most the largest logit error, so an
    /// NLL (and a mean of NLLs) by at most twice the forward's relative tolerance times the logits' scale.
    public static func nll(forward tolerance: Double, logitScale: Double) -> Double { 2 * tolerance * logitScale }
}

/// The logits' scale of the committed references, for tolerances relative to it.
public enum ReferenceScale {
    /// max |logit| over the cases of a fixture model's reference.json (transformers' logits).
    public static func tinyModelLogits(_ name: String = "tiny-llama-tied") throws -> Double {
        struct Ref: Decodable { struct Case: Decodable { let logits: [[Double]] }; let cases: [Case] }
        let url = TestPaths.fixture("models/\(name)/reference.json")
        let ref = try JSONDecoder().decode(Ref.self, from: Data(contentsOf: url))
        return ref.cases.flatMap { $0.logits.flatMap { $0 } }.map(abs).max() ?? 1
    }

    /// The largest of transformers' top-5 logits over the default model's paragraph reference.
    public static func defaultModelLogits() throws -> Double {
        struct Ref: Decodable { struct P: Decodable { let top5: [[[Double]]] }; let paragraph: P }
        let url = TestPaths.fixture("default-model/reference.json")
        let ref = try JSONDecoder().decode(Ref.self, from: Data(contentsOf: url))
        return ref.paragraph.top5.flatMap { $0.map { abs($0[1]) } }.max() ?? 1
    }
}

/// Decode rows with int8 activations (`ck_q4_1_q8_rows`, `ck_q8_0_q8_rows`): one output y = Σᵢ wᵢ·xᵢ over
/// K = 32·B inputs in B blocks, against the exact value with the exact weights wᵢ = d_w·q_w,ᵢ (+ m_w).
///
/// 1. Activation quantization. Per block d = fl(amax / 127) and qᵢ = rint(clamp(fl(xᵢ / d), ±127)).
///    fl(xᵢ/d) = (xᵢ/d)(1 + δ), |δ| ≤ u, and |xᵢ/d| ≤ amax / d ≤ 127·(1 + u), so fl moves xᵢ/d by at most
///    128·u; a clamp only moves it back toward xᵢ/d; rounding to an integer adds at most 1/2. So
///    |xᵢ − d·qᵢ| ≤ d·(1/2 + 128·u), and Σᵢ wᵢ·xᵢ differs from Σᵢ wᵢ·d·qᵢ by at most
///    E_q = Σ_blocks d·(1/2 + 128·u)·Σ_block |wᵢ|.
/// 2. The kernel's fp32 part. Σᵢ wᵢ·d·qᵢ = Σ_blocks (d_w·d)·isum (+ m_w·s) with isum exact integers
///    (float(isum) exact: |isum| < 2²⁴) and s = fl(d·Σq). Per block p = fl(fl(d_w·d)·isum), (Q4_1)
///    p = fl(m_w·s + p) (one fma), then acc = fl(acc + p), block by block, no final tree. Each of the two
///    terms passes through at most 3 roundings before the running sum (fl(d_w·d), the product, the fma;
///    or fl(d·Σq) and the fma) and at most B adds in it: within γ_{B+3}·Σ|terms| ≤
///    γ_{B+3}·Σᵢ (|d_w·q_w,ᵢ| + |m_w|)·|d·qᵢ| (Higham §3.1, each term's own chain).
/// 3. The fp64 reference sum itself: γ⁽⁶⁴⁾_K·Σᵢ|wᵢ·xᵢ|, u₆₄ = 2⁻⁵³.
/// The bound is E_q + (2) + (3): computed from the data, not tuned.
///
/// Two-digit inputs (`ck_q8x2_quantize_rows`, the output head's under `DecodeActivations.q8`): per block
/// e = fl(amax / 32512), unit = 256·e (exact), q_hi = rint(clamp(fl(xᵢ/unit), ±127)), r = fl(xᵢ − unit·q_hi)
/// (one fma), q_lo = rint(clamp(fl(r/e), ±127)). As in (1), |xᵢ/unit − q_hi| ≤ 1/2 + 128·u, so
/// |xᵢ − unit·q_hi| / e ≤ 128 + 2⁻⁹; fl(r)/e and its division move that by at most 2·129·u; an unclamped
/// q_lo is within 1/2 of it, a clamped one (|value| > 127) within 1 + 2⁻⁹. So for e normal
/// |xᵢ − e·(256·q_hi + q_lo)| ≤ e·(1 + 2⁻⁸) and E_q = Σ_blocks e·(1 + 2⁻⁸)·Σ_block |wᵢ|. The kernel's fp32
/// part is (2) with isum = 256·hi + lo (exact in int32) and one more rounding: float(isum) for Q8_0 above
/// 2²⁴ (CKernels.h), so γ_{B+4}.
public enum Q8Decode {
    /// Bound on |y − Σᵢ wᵢ·xᵢ| for one output (above): `scales` d (one digit) or e (two digits) per block,
    /// `weightMagnitudes` Σ_block |wᵢ| per block, `termMagnitude` Σᵢ (|d_w·q_w,ᵢ| + |m_w|)·|xᵢ's quantized value|,
    /// `exactMagnitude` Σᵢ|wᵢ·xᵢ|.
    public static func dotBound(digits: Int = 1, scales: [Double], weightMagnitudes: [Double], termMagnitude: Double,
                                exactMagnitude: Double) -> Double {
        precondition(digits == 1 || digits == 2, "\(digits) digits")
        let u = FP32.unitRoundoff, blocks = scales.count
        let perUnit = digits == 1 ? 0.5 + 128 * u : 1 + 0x1p-8
        var quantization = 0.0
        for b in 0..<blocks { quantization += scales[b] * perUnit * weightMagnitudes[b] }
        let k64 = Double(32 * blocks) * 0x1p-53
        return quantization + FP32.gamma(blocks + 2 + digits) * termMagnitude + k64 / (1 - k64) * exactMagnitude
    }

    /// A whole network's decode logits under int8 activations vs fp32 ones, norm-relative: every linear layer's
    /// input moves by the quantization error of (1) above, at most d/2·(1 + 256·u) ≤ amax/254 per element
    /// (amax/127 · 1/2), relative to the block's largest element, so in norm by at most 1/254·√(32)/√(32) =
    /// 1/254 relative to the input (a block's ‖x − dq‖₂ ≤ √32·amax/254 ≤ ‖x‖₂·√32/254: amax ≤ ‖x‖₂).
    /// A two-digit input moves by at most e·(1 + 2⁻⁸) ≤ amax/32512·(1 + 2⁻⁸)(1 + u) per element, so by
    /// √32/32512·(1 + 2⁻⁷) in norm. Through a chain of `products` layers of which `int8Products` take int8
    /// inputs and `twoDigitProducts` two-digit ones (relative errors add to first order, as in `FP32.chain`),
    /// plus the fp32 chain of all `products`. Under `DecodeActivations.q8` the output head is the one
    /// two-digit product, under `q8-f32head` it keeps fp32 inputs, under `q8-all` it is one more int8 product.
    /// Loose (worst case per block) but derived; for tiny fixture models, whose chains are short, it still
    /// separates a right answer from a wrong one.
    public static func chain(products: Int, int8Products: Int, twoDigitProducts: Int = 0, innerDimension: Int) -> Double {
        precondition(int8Products + twoDigitProducts <= products,
                     "\(int8Products) int8 and \(twoDigitProducts) two-digit products in a chain of \(products)")
        return Double(int8Products) * (32.0.squareRoot() / 254 * (1 + 256 * FP32.unitRoundoff))
            + Double(twoDigitProducts) * (32.0.squareRoot() / 32512 * (1 + 0x1p-7))
            + FP32.chain(products: products, innerDimension: innerDimension)
    }
}
