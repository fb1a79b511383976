/// Finds stop strings in text that arrives piece by piece, and says which text is final.
///
/// Text is held back while its end could still grow into a stop string (the longest suffix that
/// is a proper prefix of one), so what `push` returns is never retracted and never contains the
/// start of a stop string. Because everything that could begin a stop string is held, a stop
/// string can only begin inside the held text: searching that text alone finds it, and the first
/// occurrence (by position, across all stop strings) ends the output, as `lora generate` does.
public struct StopMatcher: Sendable {
    public let stops: [String]
    /// Text received but not yet released.
    private var held = ""

    public init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Adds a piece; returns the text that became final, and whether a stop string was found (then the
    /// returned text is everything before it, and nothing more may be pushed).
    public mutating func push(_ piece: String) -> (text: String, stopped: Bool) {
        held += piece
        if stops.isEmpty { defer { held = "" }; return (held, false) }
        var first: String.Index?
        for s in stops {
            if let r = held.range(of: s), first == nil || r.lowerBound < first! { first = r.lowerBound }
        }
        if let first {
            defer { held = "" }
            return (String(held[..<first]), true)
        }
        let keep = Self.longestStopPrefixSuffix(held, stops: stops)
        let cut = held.index(held.endIndex, offsetBy: -keep)
        let out = String(held[..<cut])
        held = String(held[cut...])
        return (out, false)
    }

    /// Releases what is held at the end of generation (it did not become a stop string).
    public mutating func flush() -> String {
        defer { held = "" }
        return held
    }

    /// Length in characters of the longest suffix of `text` that is a proper prefix of a stop string.
    static func longestStopPrefixSuffix(_ text: String, stops: [String]) -> Int {
        var best = 0
        for s in stops where s.count > 1 {
            for n in stride(from: min(s.count - 1, text.count), to: best, by: -1)
            where text.hasSuffix(String(s.prefix(n))) { best = n; break }
        }
        return best
    }
}
