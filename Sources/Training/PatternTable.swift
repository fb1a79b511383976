import Foundation

/// PEFT's `rank_pattern` / `alpha_pattern`: keys (regular expressions) in the order the config file
/// gives them, each with a value. A module takes the value of the FIRST key for which
/// `(.*\.)?(KEY)` matches its whole name (peft 0.21 `get_pattern_key`, `utils/other.py`:
/// `re.match(rf"(.*\.)?({key})$", name)`), so order matters when two keys match one module.
public struct PatternTable<Value: Sendable & Equatable & Codable>: Sendable, Equatable, Codable, ExpressibleByDictionaryLiteral, Sequence {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: Value
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public init(_ pairs: [(String, Value)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public init(dictionaryLiteral elements: (String, Value)...) { self.init(elements) }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    public var keys: [String] { entries.map(\.key) }

    /// Setting an existing key keeps its position (as a Python dict does).
    public subscript(key: String) -> Value? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append(Entry(key: key, value: newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: Value)]> {
        entries.map { (key: $0.key, value: $0.value) }.makeIterator()
    }

    /// The value of the first key whose pattern matches `modulePath` (e.g.
    /// "model.layers.3.self_attn.q_proj") as PEFT matches it, or nil.
    public func match(_ modulePath: String) -> Value? {
        for e in entries where Self.matches(key: e.key, modulePath: modulePath) { return e.value }
        return nil
    }

    /// PEFT's rule: `re.match(rf"(.*\.)?({key})$", name)`; `re.match` anchors at the start and
    /// `$` at the end, so the whole name must match. A key that is not a valid regular
    /// expression matches nothing (`compile` refuses such keys when a config is parsed).
    public static func matches(key: String, modulePath: String) -> Bool {
        guard let re = try? compile(key) else { return false }
        return (try? re.wholeMatch(in: modulePath)) != nil
    }

    /// The regular expression PEFT builds from a key; throws when the key is not one.
    public static func compile(_ key: String) throws -> Regex<AnyRegexOutput> {
        try Regex("(.*\\.)?(" + key + ")")
    }

    // Codable: a JSON object whose keys keep this table's order when written.
    private struct FieldKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: FieldKey.self)
        for e in entries { try c.encode(e.value, forKey: FieldKey(stringValue: e.key)) }
    }

    /// Decoding keeps the order the decoder reports its keys in (Foundation's JSONDecoder does
    /// not promise file order: configs from files go through `PEFTConfigFile`, which does).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: FieldKey.self)
        for k in c.allKeys { self[k.stringValue] = try c.decode(Value.self, forKey: k) }
    }
}
