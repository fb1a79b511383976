import Kernels
import Quantization

/// The frozen weights of one decoder block. Linear weights are [out, in] as in PyTorch, in HF's
/// layout (q/k rows in rotate-half order: GGUF's interleaved rows are un-permuted on load).
public struct LayerWeights: @unchecked Sendable {
    public var attnNorm: [Float]          // [D]   input_layernorm.weight
    public var q: LinearWeight            // [H*E, D]
    public var k: LinearWeight            // [Hk*E, D]
    public var v: LinearWeight            // [Hk*E, D]
    public var o: LinearWeight            // [D, H*E]
    public var mlpNorm: [Float]           // [D]   post_attention_layernorm.weight
    public var gate: LinearWeight         // [F, D]
    public var up: LinearWeight           // [F, D]
    public var down: LinearWeight         // [D, F]
    /// Qwen2's projection biases, added after q/k/v_proj (before RoPE); nil for Llama and Mistral.
    public var qBias: [Float]?            // [H*E]   q_proj.bias
    public var kBias: [Float]?            // [Hk*E]  k_proj.bias
    public var vBias: [Float]?            // [Hk*E]  v_proj.bias

    public init(attnNorm: [Float], q: LinearWeight, k: LinearWeight, v: LinearWeight, o: LinearWeight,
                mlpNorm: [Float], gate: LinearWeight, up: LinearWeight, down: LinearWeight,
                qBias: [Float]? = nil, kBias: [Float]? = nil, vBias: [Float]? = nil) {
        self.attnNorm = attnNorm; self.q = q; self.k = k; self.v = v; self.o = o
        self.mlpNorm = mlpNorm; self.gate = gate; self.up = up; self.down = down
        self.qBias = qBias; self.kBias = kBias; self.vBias = vBias
    }

    /// Adds `bias` [n] to every row of Y[T, n]; nothing when `bias` is nil.
    @inline(__always)
    public static func addBias(_ bias: [Float]?, to y: UnsafeMutablePointer<Float>, tokens T: Int) {
        guard let bias else { return }
        bias.withUnsafeBufferPointer { b in
            let n = b.count
            for t in 0..<T {
                let row = y + t * n
                for i in 0..<n { row[i] += b[i] }
            }
        }
    }

    /// The linear weights by their HF module name (q_proj ... down_proj).
    public func linear(_ name: String) -> LinearWeight? {
        switch name {
        case "q_proj": return q
        case "k_proj": return k
        case "v_proj": return v
        case "o_proj": return o
        case "gate_proj": return gate
        case "up_proj": return up
        case "down_proj": return down
        default: return nil
        }
    }

    public static let linearNames = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
}

/// All frozen weights of a Llama-family model. Immutable once loaded; shared by every request.
public struct ModelWeights: @unchecked Sendable {
    /// [V, D] model.embed_tokens.weight in fp32; empty when the table is kept quantized.
    public var embedding: [Float]
    /// The embedding table kept in its GGUF block format (`--quant keep`), one row per token.
    public var quantizedEmbedding: QuantizedRows?
    public var layers: [LayerWeights]     // L
    public var finalNorm: [Float]         // [D]     model.norm.weight
    /// The output head [V, D]; the embedding matrix when embeddings are tied.
    public var lmHead: LinearWeight

    public init(embedding: [Float], layers: [LayerWeights], finalNorm: [Float], lmHead: LinearWeight,
                quantizedEmbedding: QuantizedRows? = nil) {
        self.embedding = embedding; self.layers = layers; self.finalNorm = finalNorm; self.lmHead = lmHead
        self.quantizedEmbedding = quantizedEmbedding
    }

    /// Writes token `id`'s embedding row (D floats) into `out`.
    @inline(__always)
    public func embed(_ id: Int, dim D: Int, into out: UnsafeMutablePointer<Float>) {
        if let q = quantizedEmbedding {
            q.row(id, into: out)
        } else {
            embedding.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + id * D, count: D) }
        }
    }

    /// Bytes of the embedding table as held.
    public var embeddingBytes: Int { quantizedEmbedding?.bytes.count ?? embedding.count * MemoryLayout<Float>.size }
}

/// Rows of a matrix kept in a GGUF block format, dequantized one row at a time.
public final class QuantizedRows: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let columns: Int
    public let rowBytes: Int
    public let bytes: [UInt8]

    public init(type: GGMLType, rows: Int, columns: Int, bytes: [UInt8]) {
        precondition(columns % type.blockSize == 0 && bytes.count == rows * columns / type.blockSize * type.bytesPerBlock)
        self.type = type; self.rows = rows; self.columns = columns
        self.rowBytes = columns / type.blockSize * type.bytesPerBlock
        self.bytes = bytes
    }

    @inline(__always)
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        bytes.withUnsafeBytes { raw in
            _ = GGUFDequantize.row(type, raw.baseAddress! + r * rowBytes, count: columns, into: out)
        }
    }
}
