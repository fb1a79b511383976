import Foundation

/// A fine-tune job as the CLI and API show it. JSON: id, status, attempt, error, task, version,
/// and the rest.
public struct JobRecord: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        case queued, running, succeeded, failed, cancelled
        public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
    }

    public let id: Int
    public let task: String
    public let base: String
    public let status: Status
    public let attempt: Int
    public let maxAttempts: Int
    public let worker: String?
    public let heartbeatAt: String?
    public let hyperparameters: JSONValue
    public let dataName: String
    public let dataSHA256: String
    public let dataSize: Int
    public let evalDataName: String?
    public let evalDataSHA256: String?
    public let error: String?
    public let autoPromote: Bool
    public let promoteIfBetter: Bool
    /// The version registered on success.
    public let version: Int?
    public let createdBy: String
    public let createdAt: String
    public let startedAt: String?
    public let finishedAt: String?
    public let nextAttemptAt: String
    /// The uploaded files a job created over HTTP was made from (nil otherwise, or once deleted).
    public var trainingFileID: Int? = nil
    public var validationFileID: Int? = nil
    /// The caller's metadata (HTTP API), and the API key that created the job.
    public var metadata: JSONValue? = nil
    public var apiKey: String? = nil

    enum CodingKeys: String, CodingKey {
        case id, task, base, status, attempt, worker, hyperparameters, error, version
        case maxAttempts = "max_attempts"
        case heartbeatAt = "heartbeat_at"
        case dataName = "data_name"
        case dataSHA256 = "data_sha256"
        case dataSize = "data_size"
        case evalDataName = "eval_data_name"
        case evalDataSHA256 = "eval_data_sha256"
        case autoPromote = "auto_promote"
        case promoteIfBetter = "promote_if_better"
        case createdBy = "created_by"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case nextAttemptAt = "next_attempt_at"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(task, forKey: .task)
        try c.encode(base, forKey: .base)
        try c.encode(status, forKey: .status)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(maxAttempts, forKey: .maxAttempts)
        try c.encode(worker, forKey: .worker)
        try c.encode(heartbeatAt, forKey: .heartbeatAt)
        try c.encode(hyperparameters, forKey: .hyperparameters)
        try c.encode(dataName, forKey: .dataName)
        try c.encode(dataSHA256, forKey: .dataSHA256)
        try c.encode(dataSize, forKey: .dataSize)
        try c.encode(evalDataName, forKey: .evalDataName)
        try c.encode(evalDataSHA256, forKey: .evalDataSHA256)
        // error and version are always present (null when unset), as the JSON shape says.
        try c.encode(error, forKey: .error)
        try c.encode(version, forKey: .version)
        try c.encode(autoPromote, forKey: .autoPromote)
        try c.encode(promoteIfBetter, forKey: .promoteIfBetter)
        try c.encode(createdBy, forKey: .createdBy)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(finishedAt, forKey: .finishedAt)
        try c.encode(nextAttemptAt, forKey: .nextAttemptAt)
    }
}

/// One event of a job: a message or per-step metrics. JSON: id, job, attempt, at, level, type,
/// message, data.
public struct JobEvent: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case message, metrics }
    public enum Level: String, Sendable, Codable { case debug, info, warning, error }
    public let id: Int
    public let job: Int
    public let attempt: Int
    public let at: String
    public let level: Level
    public let type: Kind
    public let message: String
    public let data: JSONValue
}

/// What a new job carries, already validated by the service layer.
public struct NewJob: Sendable {
    public var task: String
    public var base: String
    public var hyperparameters: JSONValue
    public var dataName: String
    public var data: [UInt8]
    public var dataSHA256: String
    public var evalDataName: String?
    public var evalData: [UInt8]?
    public var evalDataSHA256: String?
    public var autoPromote: Bool
    public var promoteIfBetter: Bool
    public var maxAttempts: Int
    public var actor: String
    /// Set by the HTTP API: the uploaded files, the caller's metadata and its API key's name.
    public var trainingFileID: Int?
    public var validationFileID: Int?
    public var metadata: JSONValue?
    public var apiKey: String?

    public init(task: String, base: String, hyperparameters: JSONValue, dataName: String, data: [UInt8], dataSHA256: String,
                evalDataName: String? = nil, evalData: [UInt8]? = nil, evalDataSHA256: String? = nil,
                autoPromote: Bool = false, promoteIfBetter: Bool = false, maxAttempts: Int = 3, actor: String) {
        self.task = task; self.base = base; self.hyperparameters = hyperparameters
        self.dataName = dataName; self.data = data; self.dataSHA256 = dataSHA256
        self.evalDataName = evalDataName; self.evalData = evalData; self.evalDataSHA256 = evalDataSHA256
        self.autoPromote = autoPromote; self.promoteIfBetter = promoteIfBetter
        self.maxAttempts = maxAttempts; self.actor = actor
    }
}

/// A job a worker holds: the record plus its data, and the attempt that owns it.
public struct ClaimedJob: Sendable {
    public let record: JobRecord
    public let data: [UInt8]
    public let evalData: [UInt8]?
    public var attempt: Int { record.attempt }
    public var id: Int { record.id }
}

/// A stored checkpoint of a job (the bytes are fetched separately).
public struct JobCheckpointInfo: Sendable, Equatable {
    public let id: Int
    public let step: Int
    public let micro: Int
    public let sha256: String
    public let size: Int
}
