/// Domain errors of the registry. The server layer maps them to HTTP statuses later
/// (notFound 404, conflict-like 409, invalid 400).
public enum RegistryError: Error, CustomStringConvertible, Equatable {
    case notFound(kind: String, name: String)
    case alreadyExists(kind: String, name: String)
    case invalidName(kind: String, name: String, rule: String)
    case invalidReference(String)
    /// `latest` moves by itself; nobody promotes or rolls it back.
    case reservedAlias(String)
    case nothingToRollBack(task: String, alias: String)
    case rollbackTargetArchived(task: String, alias: String, version: Int)
    case versionArchived(task: String, version: Int)
    case versionHasAliases(task: String, version: Int, aliases: [String])
    /// The bytes do not hash to what was recorded. `source` is "cache" or "database".
    case artifactCorrupt(sha256: String, source: String, detail: String)
    case invalidArtifact(path: String, reason: String)
    case io(path: String, reason: String)
    /// The request cannot be done in the current state (a file in use, an idempotency key reused
    /// with another request): the server answers 409.
    case conflict(String)

    public var description: String {
        switch self {
        case let .notFound(kind, name): return "no \(kind) named '\(name)'"
        case let .alreadyExists(kind, name): return "a \(kind) named '\(name)' already exists"
        case let .invalidName(kind, name, rule): return "invalid \(kind) name '\(name)': \(rule)"
        case let .invalidReference(ref):
            return "invalid adapter reference '\(ref)': expected TASK, TASK@VERSION or TASK@ALIAS"
        case let .reservedAlias(alias):
            return "alias '\(alias)' is automatic (it follows the newest version) and cannot be moved by hand"
        case let .nothingToRollBack(task, alias):
            return "nothing to roll back to: alias '\(alias)' of task '\(task)' has no earlier promotion still in effect"
        case let .rollbackTargetArchived(task, alias, version):
            return "cannot roll back alias '\(alias)' of task '\(task)' to version \(version): it is archived"
        case let .versionArchived(task, version): return "version \(version) of task '\(task)' is archived"
        case let .versionHasAliases(task, version, aliases):
            return "cannot archive \(task)@\(version): alias(es) \(aliases.joined(separator: ", ")) point at it; "
                + "promote another version first"
        case let .artifactCorrupt(sha, source, detail):
            return "artifact \(sha) is corrupt in the \(source): \(detail)"
        case let .invalidArtifact(path, reason): return "\(path): \(reason)"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .conflict(message): return message
        }
    }
}
