import Kernels

/// A tensor in QLoRA's NF4 with double quantization, laid out exactly as bitsandbytes 0.50 stores it
/// (`quantize_4bit(quant_type="nf4", blocksize=64, compress_statistics=True)`):
///
/// - `packed`: ceil(count / 2) bytes over the row-major flattened tensor, two 4-bit code indices per
///   byte, the FIRST element in the HIGH nibble (an odd count pads the last low nibble with code 7, 0.0).
/// - blocks of `blockSize` = 64 consecutive elements; block b's scale absmax[b] is stored 8-bit:
///   absmax[b] = dynamicMap[absmaxCodes[b]] * nestedAbsmax[b / 256] + offset   (all fp32)
/// - `offset` = mean of the fp32 absmax, `nestedAbsmax` the max |absmax - offset| of each 256 blocks.
///
/// Element i dequantizes to `code[nibble(i)] * absmax[i / 64]` in fp32, as `dequantize_4bit` does.
/// Resident size: 0.5 + 1/64 + 4/16384 bytes per element, about 0.516.
public struct NF4Tensor: Sendable {
    /// Elements per 4-bit block (bitsandbytes' `blocksize`).
    public static let blockSize = 64
    /// Absmax values per nested 8-bit block (`quantize_blockwise(absmax - offset, blocksize=256)`).
    public static let nestedBlockSize = 256

    /// The 16 NF4 values, index 0..15 (bitsandbytes `get_4bit_type("nf4")`, QLoRA appendix).
    public static let code: [Float] = [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ]

    /// Bucket boundaries (code[i] + code[i+1]) / 2 in fp32; a value on a boundary takes the LOWER code
    /// (`torch.bucketize(right=False)` in bitsandbytes' default backend).
    public static let midpoints: [Float] = (0..<15).map { (code[$0] + code[$0 + 1]) / 2 }

    public let shape: [Int]
    public let count: Int
    public let packed: [UInt8]
    public let absmaxCodes: [UInt8]
    public let nestedAbsmax: [Float]
    public let offset: Float
    /// The nested map (bitsandbytes' signed dynamic map unless loaded otherwise).
    public let nestedCode: [Float]

    public var blockCount: Int { absmaxCodes.count }

    /// True when `nestedCode` is its own copy rather than the process-wide `BlockwiseDynamic.signedMap`.
    public let ownsNestedCode: Bool

    /// Bytes held: packed data, 8-bit absmax, nested fp32 absmax and offset (plus the nested map when it is
    /// not the shared default).
    public var residentBytes: Int {
        packed.count + absmaxCodes.count + 4 * nestedAbsmax.count + 4 + (ownsNestedCode ? 4 * nestedCode.count : 0)
    }

    /// Wraps stored state (e.g. a bnb-4bit checkpoint's `weight`, `weight.absmax`, `weight.nested_absmax`,
    /// `nested_offset` and `weight.nested_quant_map`) without re-quantizing; sizes are checked.
    public init(shape: [Int], packed: [UInt8], absmaxCodes: [UInt8], nestedAbsmax: [Float], offset: Float,
                nestedCode: [Float] = BlockwiseDynamic.signedMap) throws {
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else { throw QuantizedError.badShape(field: "nf4.shape", shape: shape) }
        let n = shape.reduce(1, *)
        let blocks = (n + Self.blockSize - 1) / Self.blockSize
        let nested = (blocks + Self.nestedBlockSize - 1) / Self.nestedBlockSize
        guard packed.count == (n + 1) / 2 else { throw QuantizedError.sizeMismatch(field: "nf4.packed", expected: (n + 1) / 2, actual: packed.count) }
        guard absmaxCodes.count == blocks else { throw QuantizedError.sizeMismatch(field: "nf4.absmax", expected: blocks, actual: absmaxCodes.count) }
        guard nestedAbsmax.count == nested else { throw QuantizedError.sizeMismatch(field: "nf4.nested_absmax", expected: nested, actual: nestedAbsmax.count) }
        guard nestedCode.count == 256 else { throw QuantizedError.sizeMismatch(field: "nf4.nested_quant_map", expected: 256, actual: nestedCode.count) }
        self.shape = shape
        self.count = n
        self.packed = packed
        self.absmaxCodes = absmaxCodes
        self.nestedAbsmax = nestedAbsmax
        self.offset = offset
        // The default map is shared (one copy-on-write buffer for every tensor), not counted per tensor.
        let shared = BlockwiseDynamic.signedMap
        self.ownsNestedCode = nestedCode.map(\.bitPattern) != shared.map(\.bitPattern)
        self.nestedCode = ownsNestedCode ? nestedCode : shared
    }

    /// Checks a stored `weight.quant_map` (e.g. from a bnb-4bit checkpoint) is NF4's 16 values, bit for bit:
    /// the kernels use `code` itself, so any other map (FP4, a custom one) is refused rather than misread.
    public static func validateQuantMap(_ map: [Float]) throws {
        guard map.count == code.count else { throw QuantizedError.sizeMismatch(field: "nf4.quant_map", expected: code.count, actual: map.count) }
        for i in 0..<code.count where map[i].bitPattern != code[i].bitPattern {
            throw QuantizedError.badValue(field: "nf4.quant_map[\(i)]", value: "\(map[i])",
                                          hint: "expected the NF4 value \(code[i]); is this an fp4 checkpoint?")
        }
    }

    /// Quantizes W (row-major, `shape`) as bitsandbytes' CPU backend does, byte for byte.
    /// `meanThreads` is the PyTorch intra-op thread count whose summation order the offset reproduces;
    /// it only matters above 32,768 blocks (2M elements). See `BlockwiseTorchMean`.
    public static func quantize(_ w: UnsafeBufferPointer<Float>, shape: [Int],
                                meanThreads: Int = Parallel.threads) throws -> NF4Tensor {
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else { throw QuantizedError.badShape(field: "nf4.shape", shape: shape) }
        let n = shape.reduce(1, *)
        guard w.count == n else { throw QuantizedError.sizeMismatch(field: "nf4.weight", expected: n, actual: w.count) }
        let blocks = (n + blockSize - 1) / blockSize
        var packed = [UInt8](repeating: 0, count: (n + 1) / 2)
        var absmax = [Float](repeating: 0, count: blocks)
        packed.withUnsafeMutableBufferPointer { p in
            absmax.withUnsafeMutableBufferPointer { a in
                Parallel.forEachChunk(blocks, minChunk: 256) { range in
                    for b in range { quantizeBlock(w, block: b, packed: p.baseAddress!, absmax: a.baseAddress!) }
                }
            }
        }
        let offset = absmax.withUnsafeBufferPointer { BlockwiseTorchMean.mean($0, threads: meanThreads) }
        // (absmax - offset) in fp32, then 8-bit blockwise with the signed dynamic map.
        let centered = absmax.map { $0 - offset }
        let nested = (blocks + nestedBlockSize - 1) / nestedBlockSize
        var codes = [UInt8](repeating: 0, count: blocks)
        var nestedAbsmax = [Float](repeating: 0, count: nested)
        centered.withUnsafeBufferPointer { c in
            codes.withUnsafeMutableBufferPointer { q in
                nestedAbsmax.withUnsafeMutableBufferPointer { m in
                    BlockwiseDynamic.quantize(c, blocksize: nestedBlockSize, codes: q.baseAddress!, absmax: m.baseAddress!)
                }
            }
        }
        return try NF4Tensor(shape: shape, packed: packed, absmaxCodes: codes, nestedAbsmax: nestedAbsmax, offset: offset)
    }

    /// One block: absmax, scale to [-1, 1], bucketize, pack. Full blocks multiply by 1 / max(absmax, 1e-38);
    /// the short tail block divides by its clamped absmax and stores the clamped value (bitsandbytes
    /// backends/default/ops.py `quantize_4bit`).
    @inline(__always)
    static func quantizeBlock(_ w: UnsafeBufferPointer<Float>, block b: Int,
                              packed: UnsafeMutablePointer<UInt8>, absmax: UnsafeMutablePointer<Float>) {
        let n = w.count
        let start = b * blockSize, end = min(start + blockSize, n)
        var m: Float = 0
        for i in start..<end { m = max(m, abs(w[i])) }
        let tail = end - start < blockSize
        let clamped = max(m, Float(1e-38))
        absmax[b] = tail ? clamped : m
        let inv = 1 / clamped
        for i in stride(from: start, to: end, by: 2) {
            let s0 = tail ? w[i] / clamped : w[i] * inv
            let q0 = bucket(min(max(s0, -1), 1))
            var q1 = 7  // bitsandbytes pads an odd count with 0.0, code 7
            if i + 1 < end {
                let s1 = tail ? w[i + 1] / clamped : w[i + 1] * inv
                q1 = bucket(min(max(s1, -1), 1))
            }
            packed[i >> 1] = UInt8(q0 << 4 | q1)
        }
    }

    /// Index of the first midpoint >= v (the number of midpoints strictly below v).
    @inline(__always)
    static func bucket(_ v: Float) -> Int {
        var lo = 0, hi = 15
        while lo < hi {
            let mid = (lo + hi) >> 1
            if midpointStorage[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    private static let midpointStorage: [Float] = midpoints

    /// Block b's fp32 absmax, recovered as `dequantize_4bit` does: dequantize_blockwise(nested) + offset.
    @inline(__always)
    public func absmax(block b: Int) -> Float {
        nestedCode[Int(absmaxCodes[b])] * nestedAbsmax[b / Self.nestedBlockSize] + offset
    }

    /// All block scales, fp32 (a planning helper: `blockCount` floats).
    public func absmaxValues() -> [Float] { (0..<blockCount).map { absmax(block: $0) } }

    /// The 4-bit code index of element i.
    @inline(__always)
    public func codeIndex(_ i: Int) -> Int {
        let byte = packed[i >> 1]
        return Int(i & 1 == 0 ? byte >> 4 : byte & 0x0F)
    }

    /// W[count] in fp32: code * absmax per element (bitsandbytes `dequantize_4bit`, fp32 out).
    public func dequantize(into out: UnsafeMutablePointer<Float>) {
        for b in 0..<blockCount {
            let s = absmax(block: b)
            let start = b * Self.blockSize, end = min(start + Self.blockSize, count)
            for i in start..<end { out[i] = Self.code[codeIndex(i)] * s }
        }
    }

    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { dequantize(into: $0.baseAddress!) }
        return out
    }
}
