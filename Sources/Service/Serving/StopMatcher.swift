import Model

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
        if let first = LlamaModel.firstStop(in: held, stops: stops) {
            defer { held = "" }
            return (String(held[..<first]), true)
        }
        let keep = LlamaModel.longestStopPrefixSuffix(held, stops: stops)
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
}
