/// How a base model's linear weights are held in memory (`--quant`).
public enum QuantizationMode: String, CaseIterable, Sendable, Codable {
    /// GGUF with quantized linear weights: `keep`; anything else: `nf4`.
    case auto
    /// Keep a GGUF's blocks as stored (Q4_1, Q8_0 computed directly); other types become fp32.
    /// Embeddings and the LM head stay in their source format too.
    case keep
    /// bitsandbytes' NF4 with double quantization (blocks of 64), embeddings and head unquantized.
    case nf4
    /// Per-row absmax int8.
    case int8
    /// fp32.
    case none
}
