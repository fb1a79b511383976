import Foundation

/// A RoPE frequency scaling, as transformers' `modeling_rope_utils.ROPE_INIT_FUNCTIONS` defines
/// it for `rope_type` "linear" and "llama3". Both only change the inverse frequencies
/// (their attention factor is 1), so the rotation kernel is the default one.
public enum RoPEScaling: Sendable, Equatable, Codable {
    /// invFreq / factor (`_compute_linear_scaling_rope_parameters`).
    case linear(factor: Float)
    /// Llama 3.1's piecewise scaling by wavelength (`_compute_llama3_parameters`).
    case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalMaxPositionEmbeddings: Int)
    /// llama.cpp's `rope_freqs.weight`: invFreq[i] / factors[i] (ggml `rope_yarn(theta_base / freq_factor)`).
    case frequencyFactors([Float])

    /// The scaled inverse frequencies [E/2] from the default ones, in fp32 with transformers'
    /// operation order so the results match torch's to the last bit where possible.
    public func apply(to invFreq: [Float]) -> [Float] {
        switch self {
        case let .linear(factor):
            return invFreq.map { $0 / factor }
        case let .llama3(factor, low, high, original):
            // wavelen = 2π / inv_freq is torch's __rdiv__: reciprocal(inv_freq) * fp32(2π).
            let twoPi = Float(2 * Double.pi)
            let oldContext = Float(original)
            let lowWavelen = Float(Double(original) / Double(low))
            let highWavelen = Float(Double(original) / Double(high))
            let span = Float(Double(high) - Double(low))
            return invFreq.map { f in
                let wavelen = (1 / f) * twoPi
                let scaled = wavelen > lowWavelen ? f / factor : f
                if wavelen < highWavelen || wavelen > lowWavelen { return scaled }
                // Medium frequencies interpolate between scaled and unscaled.
                let smooth = ((1 / wavelen) * oldContext - low) / span
                return (1 - smooth) * scaled / factor + smooth * scaled
            }
        case let .frequencyFactors(factors):
            return zip(invFreq, factors).map { $0 / $1 }
        }
    }
}
