import Model

/// B rows of T tokens each, flattened to N = B*T positions. Attention stays inside a segment
/// (a record): position i sees positions visibleStart[i]...i of its own row. Padding positions
/// see only themselves and are never scored, so they change no real token's logits, loss or gradient.
public struct MicroBatch: Sendable, Equatable {
    public var rows: Int                 // B
    public var length: Int               // T
    public var tokens: [Int]             // [B*T]
    public var positions: [Int32]        // [B*T] rotary positions (restart per record when packed)
    public var visibleStart: [Int32]     // [B*T] first key position (within the row) position i attends to
    /// targets[i] = the token predicted at position i (the next token), or -1 when not scored.
    public var targets: [Int32]          // [B*T]
    /// Real (non-padding) tokens, for tokens/s.
    public var realTokens: Int

    public var count: Int { rows * length }
    public var scoredCount: Int { targets.lazy.filter { $0 >= 0 }.count }

    /// Pads records to the longest one (right padding with token 0). `records[i].scored[j]` says
    /// token j is scored, so position j-1 gets target tokens[j].
    public static func padded(_ records: [TokenizedRecord]) -> MicroBatch {
        let T = max(1, records.map(\.tokens.count).max() ?? 1)
        return packed(records.map { [$0] }, length: T)
    }

    /// Rows made of several records each (packing): every record restarts its positions at 0 and
    /// attends only within itself; the rest of the row is padding.
    public static func packed(_ rows: [[TokenizedRecord]], length T: Int) -> MicroBatch {
        let B = rows.count
        var tokens = [Int](repeating: 0, count: B * T)
        var positions = [Int32](repeating: 0, count: B * T)
        var visible = [Int32](repeating: 0, count: B * T)
        var targets = [Int32](repeating: -1, count: B * T)
        var real = 0
        for (b, recs) in rows.enumerated() {
            var at = 0
            for r in recs {
                precondition(at + r.tokens.count <= T, "packed row overflows its length")
                for j in 0..<r.tokens.count {
                    let i = b * T + at + j
                    tokens[i] = r.tokens[j]
                    positions[i] = Int32(j)
                    visible[i] = Int32(at)
                    if j + 1 < r.tokens.count && r.scored[j + 1] { targets[i] = Int32(r.tokens[j + 1]) }
                }
                at += r.tokens.count
                real += r.tokens.count
            }
            for j in at..<T {
                positions[b * T + j] = Int32(j)
                visible[b * T + j] = Int32(j)   // padding attends to itself only
            }
        }
        return MicroBatch(rows: B, length: T, tokens: tokens, positions: positions, visibleStart: visible,
                          targets: targets, realTokens: real)
    }
}
