import Foundation
import Model
import Registry
import Training

/// Jobs created from uploaded files (the HTTP API): the same checks as `submit`, the data read
/// from the files' stored bytes, optionally idempotent.
extension JobService {
    public struct FileSubmission: Sendable {
        public var task: String
        /// A registered base model's name.
        public var base: String
        public var trainingFile: Int
        public var validationFile: Int?
        public var hyperparameters: JobHyperparameters
        public var autoPromote = false
        public var promoteIfBetter = false
        public var maxAttempts = 3
        public var metadata: JSONValue?
        public var actor: String
        /// The API key's name, when the server enforces keys.
        public var apiKey: String?
        /// `Idempotency-Key` and the sha256 of the request it came with.
        public var idempotency: (key: String, requestSHA256: String)?

        public init(task: String, base: String, trainingFile: Int, validationFile: Int?, hyperparameters: JobHyperparameters, actor: String) {
            self.task = task; self.base = base; self.trainingFile = trainingFile; self.validationFile = validationFile
            self.hyperparameters = hyperparameters; self.actor = actor
        }
    }

    /// Queues a job over uploaded files. Returns the job and whether it is the one an earlier
    /// request with the same idempotency key created.
    public func submit(files s: FileSubmission) throws -> (job: JobRecord, replayed: Bool) {
        try Names.validateTask(s.task)
        if s.promoteIfBetter && !s.autoPromote { throw ModelError.invalidArgument("promote_if_better needs auto_promote") }
        if s.promoteIfBetter && s.validationFile == nil { throw ModelError.invalidArgument("promote_if_better compares eval loss: give validation_file") }
        try s.hyperparameters.settings.validate()
        let base = try registry.baseModel(named: s.base)
        if let shape = base.config {
            try s.hyperparameters.settings.validate(for: try JSONDecoder().decode(LlamaConfig.self, from: try JSONEncoder().encode(shape)))
        }
        let files = FileService(registry: registry)
        let train = try files.file(s.trainingFile)
        let trainBytes = try files.bytes(s.trainingFile)
        let valid = try s.validationFile.map { try files.file($0) }
        let validBytes = try s.validationFile.map { try files.bytes($0) }
        var job = NewJob(task: s.task, base: base.name, hyperparameters: try s.hyperparameters.json,
                         dataName: train.filename, data: trainBytes, dataSHA256: train.sha256,
                         evalDataName: valid?.filename, evalData: validBytes, evalDataSHA256: valid?.sha256,
                         autoPromote: s.autoPromote, promoteIfBetter: s.promoteIfBetter, maxAttempts: s.maxAttempts, actor: s.actor)
        job.trainingFileID = train.id
        job.validationFileID = valid?.id
        job.metadata = s.metadata
        job.apiKey = s.apiKey
        let result: (JobRecord, Bool) = try registry.pool.withConnection { c in
            if let (key, hash) = s.idempotency {
                return try store.insertIdempotent(job, apiKey: s.apiKey ?? "", key: key, requestSHA256: hash, on: c)
            }
            return (try store.insert(job, on: c), false)
        }
        if !result.1 { registry.logger.info("queued job \(result.0.id) for task \(result.0.task) on \(result.0.base)") }
        return result
    }

    /// Jobs newest first below the cursor `before`, optionally in one state and of one task (a valid task name).
    public func jobs(before: Int?, limit: Int, status: JobRecord.Status?, task: String? = nil) throws -> [JobRecord] {
        if let task { try Names.validateTask(task) }
        return try registry.pool.withConnection { try store.jobs(before: before, limit: limit, status: status, task: task, on: $0) }
    }

    /// Events newest first, below the cursor `before`.
    public func events(_ id: Int, before: Int?, limit: Int) throws -> [JobEvent] {
        _ = try job(id)
        return try registry.pool.withConnection { try store.events(job: id, before: before, limit: limit, on: $0) }
    }

    /// Tokens trained so far by each of these jobs (absent: none logged yet).
    public func trainedTokens(_ ids: [Int]) throws -> [Int: Int] {
        try registry.pool.withConnection { try store.trainedTokens(jobs: ids, on: $0) }
    }

    public func checkpoints(_ id: Int) throws -> [JobCheckpointRecord] {
        _ = try job(id)
        return try registry.pool.withConnection { try store.checkpoints(job: id, on: $0) }
    }
}
