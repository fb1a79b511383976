/// GPT-2's reversible map between bytes and printable Unicode scalars, used by byte-level BPE.
///
/// Bytes that are printable Latin-1 ('!'...'~', '¡'...'¬', '®'...'ÿ') map to themselves; the other
/// 68 bytes map, in increasing byte order, to U+0100, U+0101, ... (so the space 0x20 becomes 'Ġ'
/// U+0120 and '\n' becomes 'Ċ' U+010A). Source: GPT-2's encoder.py `bytes_to_unicode`, which HF
/// `tokenizers` reproduces in pre_tokenizers/byte_level.rs.
enum ByteLevelMapping {
    /// byte -> scalar.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// scalar value -> byte, for scalars below 0x144 (the largest mapped scalar is U+0143); -1 when unmapped.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// The byte a mapped scalar stands for, or nil when the scalar is not part of the mapping.
    @inline(__always)
    static func byte(for s: Unicode.Scalar) -> UInt8? {
        let v = Int(s.value)
        guard v < scalarToByte.count else { return nil }
        let b = scalarToByte[v]
        return b < 0 ? nil : UInt8(b)
    }

    /// Maps the UTF-8 bytes of `scalars` to their byte-level scalars.
    static func encode<S: Sequence>(_ scalars: S) -> [Unicode.Scalar] where S.Element == Unicode.Scalar {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(8)
        for s in scalars {
            UTF8.encode(s) { b in out.append(byteToScalar[Int(b)]) }
        }
        return out
    }
}
