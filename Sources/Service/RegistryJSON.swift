import Foundation

/// `{"object": "list", "data": [...]}`, the list shape of every JSON answer (CLI and HTTP).
public struct ListEnvelope<Element: Encodable>: Encodable {
    public let object = "list"
    public let data: [Element]
    public init(_ data: [Element]) { self.data = data }
    enum CodingKeys: String, CodingKey { case object, data }
}

public enum RegistryJSON {
    /// Sorted keys, pretty printed, slashes unescaped: stable output for scripts and tests.
    public static func encode<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }
}
