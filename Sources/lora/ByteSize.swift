import ArgumentParser

/// A byte count given on the command line: digits with an optional binary suffix (K, M, G, T; KiB ... too),
/// so `--max-job-memory 8G` is 8 * 2^30 bytes.
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    let bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        let s = argument.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int)] = [("KIB", 10), ("MIB", 20), ("GIB", 30), ("TIB", 40),
                                      ("K", 10), ("M", 20), ("G", 30), ("T", 40), ("B", 0)]
        var digits = Substring(s), shift = 0
        for (suffix, sh) in units where s.hasSuffix(suffix) {
            digits = s.dropLast(suffix.count); shift = sh
            break
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int(digits),
              n <= Int.max >> shift else { return nil }
        bytes = n << shift
    }

    var description: String {
        for (suffix, sh) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where bytes > 0 && bytes % (1 << sh) == 0 {
            return "\(bytes >> sh)\(suffix)"
        }
        return String(bytes)
    }

    var defaultValueDescription: String { description }
}
