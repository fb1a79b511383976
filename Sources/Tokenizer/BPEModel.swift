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
    let ignoreMerges: Bool

    private var cache: [String: [Int32]] = [:]
    private let cacheLock = NSLock()
    private static let cacheLimit = 100_000
    /// Larger than any real vocabulary (the largest are ~260k tokens).
    static let maxTokenId = 1 << 24

    /// - Parameters:
    ///   - merges: pairs of token strings, in rank order.
    ///   - source / field: where the merges come from, for errors.
    init(vocab: [String: Int], merges: [(String, String)], unkToken: String?, fuseUnk: Bool, byteFallback: Bool,
         ignoreMerges: Bool, source: String, mergesField: String) throws {
        self.vocab = vocab
        guard !vocab.isEmpty else {
            throw TokenizerError.invalidField(file: source, field: "model.vocab", reason: "the vocabulary is empty")
        }
        var maxId = -1
        for (t, id) in vocab {
            // Ids index arrays and are packed into 32 bits: refuse absurd ones instead of allocating them.
            guard id >= 0, id < BPEModel.maxTokenId else {
                throw TokenizerError.invalidField(file: source, field: "model.vocab", reason: "token \(t.debugDescription) has id \(id), outside 0..<\(BPEModel.maxTokenId)")
            }
            if id > maxId { maxId = id }
        }
        var tokens = [String](repeating: "", count: maxId + 1)
        var assigned = [Bool](repeating: false, count: maxId + 1)
        var scalarIds: [UInt32: Int32] = [:]
        for (t, id) in vocab {
            // Two tokens with one id would decode ambiguously and make encoding depend on dictionary order.
            if assigned[id] {
                let (a, b) = [tokens[id], t].sorted().pair
                throw TokenizerError.invalidField(file: source, field: "model.vocab",
                                                  reason: "tokens \(a.debugDescription) and \(b.debugDescription) both have id \(id)")
            }
            assigned[id] = true
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

    /// The merges as (left id, right id), in rank order (a pair listed twice kept at its first rank).
    var rankedMerges: [(Int, Int)] {
        merges.sorted { $0.value >> 32 < $1.value >> 32 }.map { (Int($0.key >> 32), Int($0.key & 0xFFFF_FFFF)) }
    }

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
        return syms.count < BPEModel.heapThreshold ? mergeQuadratic(syms) : mergeWithHeap(syms)
    }

    /// Words at least this long merge through a priority queue (O(n log n)); shorter ones by rescanning.
    static let heapThreshold = 24

    @inline(__always)
    private func merge(_ left: Int32, _ right: Int32) -> UInt64? {
        merges[UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))]
    }

    /// Merges the lowest-ranked adjacent pair, leftmost first, until none merges.
    private func mergeQuadratic(_ input: [Int32]) -> [Int32] {
        var syms = input
        while syms.count > 1 {
            var bestRank = UInt64.max, bestPos = -1, bestId: Int32 = 0
            for p in 0..<(syms.count - 1) {
                if let m = merge(syms[p], syms[p + 1]), m >> 32 < bestRank {
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

    /// The same order through a min-heap of (rank, position) over a linked list of symbols, as HF's
    /// word.rs does: an entry whose pair has changed since it was queued is skipped when popped.
    private func mergeWithHeap(_ input: [Int32]) -> [Int32] {
        let n = input.count
        var ids = input
        var next = Array(1...n).map { $0 == n ? -1 : $0 }
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        for p in 0..<(n - 1) {
            if let m = merge(ids[p], ids[p + 1]) { heap.push((m >> 32) << 32 | UInt64(p)) }
        }
        while let top = heap.pop() {
            let rank = top >> 32, p = Int(top & 0xFFFF_FFFF)
            guard alive[p], next[p] >= 0, let m = merge(ids[p], ids[next[p]]), m >> 32 == rank else { continue }
            let q = next[p]
            ids[p] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            alive[q] = false
            next[p] = next[q]
            if next[q] >= 0 { prev[next[q]] = p }
            if prev[p] >= 0, let l = merge(ids[prev[p]], ids[p]) { heap.push((l >> 32) << 32 | UInt64(prev[p])) }
            if next[p] >= 0, let r = merge(ids[p], ids[next[p]]) { heap.push((r >> 32) << 32 | UInt64(p)) }
        }
        var out: [Int32] = []
        var p = 0
        while p >= 0 { out.append(ids[p]); p = next[p] }
        return out
    }
}

/// A binary min-heap of packed (rank << 32 | position) keys.
struct MinHeap {
    private var a: [UInt64] = []

    mutating func push(_ v: UInt64) {
        a.append(v)
        var i = a.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if a[parent] <= a[i] { break }
            a.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let first = a.first else { return nil }
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < a.count && a[l] < a[m] { m = l }
                if r < a.count && a[r] < a[m] { m = r }
                if m == i { break }
                a.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}

private extension Array where Element == String {
    var pair: (String, String) { (self[0], self[1]) }
}
