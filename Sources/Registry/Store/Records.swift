import Foundation

/// A registered base model. JSON: name, source, sha256, files, architecture, quantization.
public struct BaseModelRecord: Sendable, Equatable, Encodable {
    public struct File: Sendable, Equatable, Codable {
        public let path: String
        public let size: Int
        public let sha256: String
        public init(path: String, size: Int, sha256: String) { self.path = path; self.size = size; self.sha256 = sha256 }
    }

    public let name: String
    public let source: String
    public let sha256: String
    public let files: [File]
    public let architecture: String
    public let quantization: String
    /// The model's shape as JSON (Model's LlamaConfig), nil when it could not be read.
    public let config: JSONValue?
    public let createdAt: String

    enum CodingKeys: String, CodingKey {
        case name, source, sha256, files, architecture, quantization, config
        case createdAt = "created_at"
    }
}

/// A task: a name and its aliases (alias -> version number). JSON: name, aliases, versions.
public struct TaskRecord: Sendable, Equatable, Codable {
    public let name: String
    public let aliases: [String: Int]
    /// Number of versions, archived ones included.
    public let versionCount: Int
    public let createdAt: String

    enum CodingKeys: String, CodingKey {
        case name, aliases
        case versionCount = "versions"
        case createdAt = "created_at"
    }
}

/// One immutable adapter version. JSON: version, task, base, sha256, metrics, and the rest.
public struct VersionRecord: Sendable, Equatable, Codable {
    public let task: String
    public let version: Int
    /// The base model's name.
    public let base: String
    /// sha256 of the stored artifact (the adapter directory as a deterministic tar).
    public let sha256: String
    public let size: Int
    public let metrics: [String: Double]
    public let loraConfig: JSONValue
    public let hyperparameters: JSONValue
    public let jobID: Int?
    public let dataSHA256: String?
    public let source: String?
    public let tags: [String: String]
    /// Aliases pointing at this version now.
    public let aliases: [String]
    public let archived: Bool
    public let createdBy: String
    public let createdAt: String

    /// `TASK@N`.
    public var reference: String { "\(task)@\(version)" }

    enum CodingKeys: String, CodingKey {
        case task, version, base, sha256, size, metrics, hyperparameters, source, tags, aliases, archived
        case loraConfig = "lora_config"
        case jobID = "job_id"
        case dataSHA256 = "data_sha256"
        case createdBy = "created_by"
        case createdAt = "created_at"
    }
}

/// One move of an alias, as recorded in the append-only history.
public struct AliasMove: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable { case promote, rollback, auto }
    public let id: Int
    public let task: String
    public let alias: String
    public let fromVersion: Int?
    public let toVersion: Int?
    public let action: Action
    public let actor: String
    public let reason: String
    public let createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, task, alias, action, actor, reason
        case fromVersion = "from_version"
        case toVersion = "to_version"
        case createdAt = "created_at"
    }
}

/// Lineage of a version produced by a job (issue 8) or given on import.
public struct Lineage: Sendable, Equatable {
    public var jobID: Int?
    public var dataSHA256: String?
    public var hyperparameters: JSONValue
    public init(jobID: Int? = nil, dataSHA256: String? = nil, hyperparameters: JSONValue = .object([:])) {
        self.jobID = jobID
        self.dataSHA256 = dataSHA256
        self.hyperparameters = hyperparameters
    }
}
