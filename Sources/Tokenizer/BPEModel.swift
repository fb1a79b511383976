import Foundation

/// Byte-pair encoding over a vocabulary and ranked merges (HF `tokenizers` models::bpe).
///
/// A word (one pre-token) starts as one symbol per Unicode scalar; the adjacent pair whose merge
/// has the lowest rank is merged, the leftmost one on ties, until no pair has a merge. This is the
/// order HF's priority queue produces. Results are cached per word.
final class BPEModel: @unchecked Sendable {
    let vocab: [String: Int]
    /// id -> token; "" for ids that have no token.
    let tokens: [String]
    /// (left id << 32 | right id) -> (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// Single-scalar tokens, the initial symbols.
    private let scalarIds: [UInt32: Int32]
    /// Ids of the "<0x00>"..."<0xFF>" tokens when `byteFallback` is on.
    private let byteIds: [Int32]?
    private let unkId: Int?
    private let fuseUnk: Bool
    private let ignoreMerges: Bool

    private var cache: [String: [Int32]] = [:]
    private let cacheLock = NSLock()
    private static let cacheLimit = 100_000

    /// - Parameters:
    ///   - merges: pairs of token strings, in rank order.
    ///   - source / field: where the merges come from, for errors.
    init(vocab: [String: Int], merges: [(String, String)], unkToken: String?, fuseUnk: Bool, byteFallback: Bool,
         ignoreMerges: Bool, source: String, mergesField: String) throws {
        self.vocab = vocab
        var maxId = -1
        for (_, id) in vocab where id > maxId { maxId = id }
        var tokens = [String](repeating: "", count: maxId + 1)
        var scalarIds: [UInt32: Int32] = [:]
        for (t, id) in vocab {
            guard id >= 0 else {
                throw TokenizerError.invalidField(file: source, field: "model.vocab", reason: "token \(t.debugDescription) has negative id \(id)")
            }
            tokens[id] = t
            let u = t.unicodeScalars
            if u.count == 1 { scalarIds[u.first!.value] = Int32(id) }
        }
        self.tokens = tokens
        self.scalarIds = scalarIds

        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a] else {
                throw TokenizerError.unknownMergeToken(file: source, field: "\(mergesField)[\(rank)]", token: a)
            }
            guard let ib = vocab[b] else {
                throw TokenizerError.unknownMergeToken(file: source, field: "\(mergesField)[\(rank)]", token: b)
            }
            guard let merged = vocab[a + b] else {
                throw TokenizerError.unknownMergeToken(file: source, field: "\(mergesField)[\(rank)]", token: a + b)
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(merged) }
        }
        self.merges = table

        if let unkToken {
            guard let id = vocab[unkToken] else {
                throw TokenizerError.invalidField(file: source, field: "model.unk_token", reason: "\(unkToken.debugDescription) is not in the vocabulary")
            }
            unkId = id
        } else {
            unkId = nil
        }
        self.fuseUnk = fuseUnk
        self.ignoreMerges = ignoreMerges
        if byteFallback {
            byteIds = (0..<256).map { b in
                vocab[String(format: "<0x%02X>", b)].map { Int32($0) } ?? -1
            }
        } else {
            byteIds = nil
        }
    }

    var maxId: Int { tokens.count - 1 }

    /// Appends the ids of one pre-token.
    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int]) {
        if word.isEmpty { return }
        let key = String(String.UnicodeScalarView(word))
        cacheLock.lock()
        let hit = cache[key]
        cacheLock.unlock()
        if let hit {
            for id in hit { out.append(Int(id)) }
            return
        }
        let ids = compute(word, key: key)
        cacheLock.lock()
        if cache.count >= BPEModel.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = ids
        cacheLock.unlock()
        for id in ids { out.append(Int(id)) }
    }

    private func compute(_ word: [Unicode.Scalar], key: String) -> [Int32] {
        if ignoreMerges, let id = vocab[key] { return [Int32(id)] }
        // Initial symbols: one per scalar, else its bytes (byte fallback), else unk (fused runs when asked).
        var syms: [Int32] = []
        syms.reserveCapacity(word.count)
        var pendingUnk = false
        for s in word {
            if let id = scalarIds[s.value] {
                pendingUnk = false
                syms.append(id)
                continue
            }
            if let byteIds {
                var ids: [Int32] = []
                var ok = true
                UTF8.encode(s) { b in
                    let id = byteIds[Int(b)]
                    if id < 0 { ok = false } else { ids.append(id) }
                }
                if ok {
                    pendingUnk = false
                    syms.append(contentsOf: ids)
                    continue
                }
            }
            if let unkId {
                if !(fuseUnk && pendingUnk) { syms.append(Int32(unkId)) }
                pendingUnk = true
            }
        }
        // Merge the lowest-ranked adjacent pair, leftmost first, until none merges.
        while syms.count > 1 {
            var bestRank = UInt64.max, bestPos = -1, bestId: Int32 = 0
            for p in 0..<(syms.count - 1) {
                let k = UInt64(UInt32(bitPattern: syms[p])) << 32 | UInt64(UInt32(bitPattern: syms[p + 1]))
                if let m = merges[k], m >> 32 < bestRank {
                    bestRank = m >> 32
                    bestPos = p
                    bestId = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
                }
            }
            if bestPos < 0 { break }
            syms[bestPos] = bestId
            syms.remove(at: bestPos + 1)
        }
        return syms
    }
}
