/// Name rules, mirrored from the schema's CHECK constraints (migrations/0001_registry.sql)
/// so users get a readable error before the database refuses.
public enum Names {
    public static let taskRule = "lowercase letters, digits, '_' and '-', starting with a letter or digit ([a-z0-9][a-z0-9_-]*), at most 100 characters"
    public static let aliasRule = taskRule + ", and not all digits"
    public static let baseModelRule = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 200 characters"
    /// The automatic alias: always the newest live version.
    public static let latest = "latest"
    /// The alias `TASK` alone follows when it exists.
    public static let production = "production"

    static func lowerName(_ s: String) -> Bool {
        guard let f = s.utf8.first, isLowerAlnum(f) else { return false }
        return s.utf8.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    static func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }

    public static func validateTask(_ name: String) throws {
        guard lowerName(name), name.utf8.count <= 100 else { throw RegistryError.invalidName(kind: "task", name: name, rule: taskRule) }
    }

    public static func validateAlias(_ name: String) throws {
        guard lowerName(name), name.utf8.count <= 100, !name.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw RegistryError.invalidName(kind: "alias", name: name, rule: aliasRule)
        }
    }

    public static func validateBaseModel(_ name: String) throws {
        guard let f = name.utf8.first, isLowerAlnum(f) || (f >= 65 && f <= 90), name.utf8.count <= 200,
              name.utf8.allSatisfy({ isLowerAlnum($0) || ($0 >= 65 && $0 <= 90) || $0 == 46 || $0 == 95 || $0 == 45 }) else {
            throw RegistryError.invalidName(kind: "base model", name: name, rule: baseModelRule)
        }
    }
}

/// An adapter reference: `TASK`, `TASK@N`, `TASK@ALIAS` (also MLflow's `TASK/N`).
public struct AdapterReference: Sendable, Equatable, CustomStringConvertible {
    public enum Selector: Sendable, Equatable {
        /// `TASK` alone: `production` when set, else `latest`.
        case defaultAlias
        case version(Int)
        case alias(String)
    }

    public let task: String
    public let selector: Selector

    public init(task: String, selector: Selector) {
        self.task = task
        self.selector = selector
    }

    public static func parse(_ text: String) throws -> AdapterReference {
        let sep: Character? = text.contains("@") ? "@" : (text.contains("/") ? "/" : nil)
        guard let sep else {
            try Names.validateTask(text)
            return AdapterReference(task: text, selector: .defaultAlias)
        }
        let parts = text.split(separator: sep, maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].isEmpty else { throw RegistryError.invalidReference(text) }
        let task = String(parts[0]), rest = String(parts[1])
        guard (try? Names.validateTask(task)) != nil else { throw RegistryError.invalidReference(text) }
        if rest.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            guard let n = Int(rest), n >= 1 else { throw RegistryError.invalidReference(text) }
            return AdapterReference(task: task, selector: .version(n))
        }
        guard sep == "@", (try? Names.validateAlias(rest)) != nil else { throw RegistryError.invalidReference(text) }
        return AdapterReference(task: task, selector: .alias(rest))
    }

    public var description: String {
        switch selector {
        case .defaultAlias: return task
        case .version(let n): return "\(task)@\(n)"
        case .alias(let a): return "\(task)@\(a)"
        }
    }
}
