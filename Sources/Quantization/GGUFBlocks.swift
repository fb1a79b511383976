// GGUF / ggml quantization blocks: one namespace per type with its block size, byte layout
// (field offsets inside a block) and a plain reference dequantizer.
//
// Layouts and the dequantization arithmetic (including the order of the fp32 operations, so
// results are bit-identical) follow the `gguf` Python package 0.19, `gguf/quants.py`
// (`dequantize_blocks` of each class), which mirrors ggml's `block_*` structs in ggml-common.h.
// All multi-byte fields are little-endian; fp16 fields are IEEE half.

/// A GGUF block type: `blockSize` consecutive weights of one row stored in `bytesPerBlock` bytes.
public protocol GGUFBlockFormat {
    static var type: GGMLType { get }
    static var blockSize: Int { get }
    static var bytesPerBlock: Int { get }
    /// Dequantizes `count` weights (a multiple of `blockSize`) from `count / blockSize`
    /// consecutive blocks at `src` (any alignment) into `dst`.
    static func dequantizeRow(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>)
}

@inline(__always)
private func f16(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Half.toFloat(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

/// Q8_0: 32 weights; f16 scale `d` then 32 int8 `qs`; w = d * q. 34 bytes.
public enum BlockQ8_0: GGUFBlockFormat {
    public static let type = GGMLType.q8_0
    public static let blockSize = 32
    public static let bytesPerBlock = 34
    public static let dOffset = 0
    public static let qsOffset = 2

    public static func dequantizeRow(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / blockSize) {
            let blk = src + b * bytesPerBlock
            let d = f16(blk, dOffset)
            let qs = (blk + qsOffset).assumingMemoryBound(to: Int8.self)
            let out = dst + b * blockSize
            for i in 0..<blockSize { out[i] = Float(qs[i]) * d }
        }
    }
}

/// Q4_0: 32 weights; f16 `d`, then 16 bytes of nibbles: byte i holds element i (low nibble)
/// and element i + 16 (high nibble); w = d * (q - 8). 18 bytes.
public enum BlockQ4_0: GGUFBlockFormat {
    public static let type = GGMLType.q4_0
    public static let blockSize = 32
    public static let bytesPerBlock = 18
    public static let dOffset = 0
    public static let qsOffset = 2

    public static func dequantizeRow(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / blockSize) {
            let blk = src + b * bytesPerBlock
            let d = f16(blk, dOffset)
            let qs = (blk + qsOffset).assumingMemoryBound(to: UInt8.self)
            let out = dst + b * blockSize
            for i in 0..<16 {
                out[i] = d * Float(Int(qs[i] & 0x0F) - 8)
                out[i + 16] = d * Float(Int(qs[i] >> 4) - 8)
            }
        }
    }
}

/// Q4_1: 32 weights; f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles (byte i: element i low,
/// element i + 16 high); w = d * q + m. 20 bytes.
public enum BlockQ4_1: GGUFBlockFormat {
    public static let type = GGMLType.q4_1
    public static let blockSize = 32
    public static let bytesPerBlock = 20
    public static let dOffset = 0
    public static let mOffset = 2
    public static let qsOffset = 4

    public static func dequantizeRow(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / blockSize) {
            let blk = src + b * bytesPerBlock
            let d = f16(blk, dOffset)
            let m = f16(blk, mOffset)
            let qs = (blk + qsOffset).assumingMemoryBound(to: UInt8.self)
            let out = dst + b * blockSize
            for i in 0..<16 {
                out[i] = d * Float(qs[i] & 0x0F) + m
                out[i + 16] = d * Float(qs[i] >> 4) + m
            }
        }
    }
}

/// Q5_0: 32 weights; f16 `d`, a little-endian u32 `qh` whose bit i is element i's fifth bit,
/// 16 bytes of low nibbles as in Q4_0; w = d * (q - 16). 22 bytes.
public enum BlockQ5_0: GGUFBlockFormat {
    public static let type = GGMLType.q5_0
    public static let blockSize = 32
    public static let bytesPerBlock = 22
    public static let dOffset = 0
    public static let qhOffset = 2
    public static let qsOffset = 6

    public static func dequantizeRow(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / blockSize) {
            let blk = src + b * bytesPerBlock
            let d = f16(blk, dOffset)
            let qh = UInt32(littleEndian: blk.loadUnaligned(fromByteOffset: qhOffset, as: UInt32.self))
            let qs = (blk + qsOffset).assumingMemoryBound(to: UInt8.self)
            let out = dst + b * blockSize
            for i in 0..<16 {
                let lo = Int(qs[i] & 0x0F) | Int((qh >> UInt32(i)) & 1) << 4
                let hi = Int(qs[i] >> 4) | Int((qh >> UInt32(i + 16)) & 1) << 4
                out[i] = d * Float(lo - 16)
                out[i + 16] = d * Float(hi - 16)
            }
        }
    }
}

/// Q4_K: 256 weights in 8 sub-blocks of 32; f16 `d`, f16 `dmin`, 12 bytes of packed 6-bit
/// sub-block scales and mins, 128 bytes of nibbles. Sub-block j has scale sc[j] and min m[j]:
/// w = d * sc[j] * q - dmin * m[j]. Each 32 bytes of nibbles hold sub-block 2c (low nibbles) and
/// 2c + 1 (high nibbles). 144 bytes.
public enum BlockQ4_K: GGUFBlockFormat {
    public static let type = GGMLType.q4_K
    public static let blockSize = 256
    public static let bytesPerBlock = 144
    public static let dOffset = 0
    public static let dminOffset = 2
    public static let scalesOffset = 4
    public static let qsOffset = 16

    /// Sub-block j's 6-bit (scale, min) from the 12 packed bytes: bytes 0-3 hold scales 0-3 in their
    /// low 6 bits and the top 2 bits of scales 4-7; bytes 4-7 the same for mins; bytes 8-11 the low
    /// 4 bits of scales 4-7 (low nibble) and mins 4-7 (high nibble).
    @inline(__always)
    public static func scaleMin(_ s: UnsafePointer<UInt8>, _ j: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (s[j] & 0x3F, s[j + 4] & 0x3F) }
        let scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30)
        let min = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30)
        return (scale, min)
    }

    public static func dequantizeRow(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / blockSize) {
            let blk = src + b * bytesPerBlock
            let d = f16(blk, dOffset)
            let dmin = f16(blk, dminOffset)
            let scales = (blk + scalesOffset).assumingMemoryBound(to: UInt8.self)
            let qs = (blk + qsOffset).assumingMemoryBound(to: UInt8.self)
            let out = dst + b * blockSize
            for c in 0..<4 {
                let (sc0, m0) = scaleMin(scales, 2 * c)
                let (sc1, m1) = scaleMin(scales, 2 * c + 1)
                let d0 = d * Float(sc0), dm0 = dmin * Float(m0)
                let d1 = d * Float(sc1), dm1 = dmin * Float(m1)
                let q = qs + 32 * c
                let o = out + 64 * c
                for i in 0..<32 {
                    o[i] = d0 * Float(q[i] & 0x0F) - dm0
                    o[i + 32] = d1 * Float(q[i] >> 4) - dm1
                }
            }
        }
    }
}

/// Q6_K: 256 weights in 16 sub-blocks of 16; 128 bytes `ql` (low 4 bits), 64 bytes `qh` (high
/// 2 bits), 16 int8 sub-block scales, f16 `d`; w = d * scale[j] * (q - 32). 210 bytes.
/// Element f = 128h + r (h = 0, 1): low bits from ql[64h + r % 64] (low nibble when r < 64, else
/// high), high bits from qh[32h + r % 32] >> (2 * (r / 32)).
public enum BlockQ6_K: GGUFBlockFormat {
    public static let type = GGMLType.q6_K
    public static let blockSize = 256
    public static let bytesPerBlock = 210
    public static let qlOffset = 0
    public static let qhOffset = 128
    public static let scalesOffset = 192
    public static let dOffset = 208

    public static func dequantizeRow(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<(count / blockSize) {
            let blk = src + b * bytesPerBlock
            let d = f16(blk, dOffset)
            let ql = (blk + qlOffset).assumingMemoryBound(to: UInt8.self)
            let qh = (blk + qhOffset).assumingMemoryBound(to: UInt8.self)
            let scales = (blk + scalesOffset).assumingMemoryBound(to: Int8.self)
            let out = dst + b * blockSize
            for h in 0..<2 {
                for r in 0..<128 {
                    let lowByte = ql[64 * h + (r & 63)]
                    let low = r < 64 ? lowByte & 0x0F : lowByte >> 4
                    let high = (qh[32 * h + (r & 31)] >> UInt8(2 * (r >> 5))) & 0x03
                    let q = Int(low | (high << 4)) - 32
                    let f = 128 * h + r
                    let dl = d * Float(scales[f >> 4])
                    out[f] = dl * Float(q)
                }
            }
        }
    }
}
