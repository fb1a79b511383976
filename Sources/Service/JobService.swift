import Fetch
import Foundation
import Logging
import Model
import Registry
import Training

/// What a job trains with, stored as the job's `hyperparameters` and recorded as the
/// resulting version's lineage: the training settings plus how the worker runs them.
public struct JobHyperparameters: Codable, Sendable, Equatable {
    public var settings: TrainingSettings
    /// Upload a checkpoint every N optimizer steps (a rescued job resumes from the newest).
    public var checkpointEvery: Int
    /// `--quant` of the base model (QuantizationMode's raw value).
    public var quant: String

    public init(settings: TrainingSettings, checkpointEvery: Int, quant: String) {
        self.settings = settings; self.checkpointEvery = checkpointEvery; self.quant = quant
    }

    enum CodingKeys: String, CodingKey {
        case settings, quant
        case checkpointEvery = "checkpoint_every"
    }

    public var json: JSONValue {
        get throws { try JSONValue.parse(try JSONEncoder().encode(self)) }
    }

    public static func from(_ json: JSONValue) throws -> JobHyperparameters {
        try JSONDecoder().decode(JobHyperparameters.self, from: try JSONEncoder().encode(json))
    }
}

/// Submitting and inspecting fine-tune jobs (the worker side is `JobWorker`).
public final class JobService: @unchecked Sendable {
    public let registry: RegistryService
    public let store = JobStore()

    public init(registry: RegistryService) { self.registry = registry }

    public struct Submission {
        public var task: String
        /// A registered base model's name, or
        public var base: String?
        /// a model file or directory, registered under its file or directory name if needed.
        public var model: URL?
        public var data: URL
        public var evalData: URL?
        public var hyperparameters: JobHyperparameters
        public var autoPromote = false
        public var promoteIfBetter = false
        public var maxAttempts = 3
        /// The job's estimated memory must fit in this (the workers' `--max-job-memory`).
        public var maxJobMemory = JobWorker.defaultMaxJobMemory
        public var actor = RegistryService.defaultActor()

        public init(task: String, base: String?, model: URL?, data: URL, evalData: URL?, hyperparameters: JobHyperparameters) {
            self.task = task; self.base = base; self.model = model; self.data = data; self.evalData = evalData
            self.hyperparameters = hyperparameters
        }
    }

    /// Validates everything a worker will need (task name, base model, settings, every record
    /// of the data files, with errors naming file and line) and only then queues the job.
    public func submit(_ s: Submission) throws -> JobRecord {
        try Names.validateTask(s.task)
        guard s.maxAttempts >= 1 else { throw ModelError.invalidArgument("--max-attempts must be at least 1, got \(s.maxAttempts)") }
        guard s.hyperparameters.checkpointEvery >= 1 else {
            throw ModelError.invalidArgument("--checkpoint-every must be at least 1, got \(s.hyperparameters.checkpointEvery)")
        }
        if s.promoteIfBetter && !s.autoPromote { throw ModelError.invalidArgument("--promote-if-better needs --auto-promote") }
        if s.promoteIfBetter && s.evalData == nil { throw ModelError.invalidArgument("--promote-if-better compares eval loss: give --eval-data") }
        guard QuantizationMode(rawValue: s.hyperparameters.quant) != nil else {
            throw ModelError.invalidArgument("unknown --quant '\(s.hyperparameters.quant)'")
        }
        try s.hyperparameters.settings.validate()
        let (data, dataSHA) = try Self.readValidated(s.data)
        let evalData = try s.evalData.map(Self.readValidated)
        let base = try resolveBase(name: s.base, model: s.model, actor: s.actor)
        // Checked against the base's recorded shape, so no worker ever claims a job it cannot run.
        if let config = try baseConfig(base) {
            try s.hyperparameters.settings.validate(for: config)
            try Self.checkMemory(s.hyperparameters, config: config, limit: s.maxJobMemory, flag: "--max-job-memory")
        }
        let job = NewJob(task: s.task, base: base, hyperparameters: try s.hyperparameters.json,
                         dataName: s.data.lastPathComponent, data: data, dataSHA256: dataSHA,
                         evalDataName: s.evalData?.lastPathComponent, evalData: evalData?.0, evalDataSHA256: evalData?.1,
                         autoPromote: s.autoPromote, promoteIfBetter: s.promoteIfBetter, maxAttempts: s.maxAttempts, actor: s.actor)
        let rec = try registry.pool.withConnection { try store.insert(job, on: $0) }
        registry.logger.info("queued job \(rec.id) for task \(rec.task) on \(rec.base)")
        return rec
    }

    /// The registered base's shape, when its inspector recorded one.
    func baseConfig(_ base: String) throws -> LlamaConfig? {
        guard let shape = try registry.baseModel(named: base).config else { return nil }
        return try JSONDecoder().decode(LlamaConfig.self, from: try JSONEncoder().encode(shape))
    }

    /// Bytes a weight of the base takes in memory under `quant`: fp32 for `none`, else at most
    /// 1.25 (Q8_0 and int8 with their scales are about 1.06; Q4_1 0.625, NF4 0.52).
    static func bytesPerWeight(quant: String) -> Double { quant == QuantizationMode.none.rawValue ? 4 : 1.25 }

    /// Refuses settings whose estimated memory (TrainingSettings.estimatedMemory) is over `limit`,
    /// naming the settings that drive it.
    static func checkMemory(_ hp: JobHyperparameters, config: LlamaConfig, limit: Int, flag: String) throws {
        let need = hp.settings.estimatedMemory(for: config, bytesPerWeight: bytesPerWeight(quant: hp.quant))
        guard need > limit else { return }
        let s = hp.settings
        throw TrainingError.invalidConfig(field: "max-job-memory", reason:
            "the job needs an estimated \(need) bytes (batch-size \(s.batchSize) x max-seq-len \(s.maxSequenceLength) positions, "
            + "rank \(s.lora.rank), quant \(hp.quant)), over \(flag) \(limit); lower --batch-size or --max-seq-len, "
            + "use --grad-checkpointing, or raise \(flag)")
    }

    /// The file's bytes and sha256 after checking every record as `lora train` does.
    static func readValidated(_ url: URL) throws -> ([UInt8], String) {
        let records = try JSONLReader.readTextRecords(url)
        guard !records.isEmpty else { throw ModelError.badInput(path: url.path, line: 0, reason: "no records") }
        guard let bytes = FileManager.default.contents(atPath: url.path) else { throw ModelError.fileNotFound(path: url.path) }
        return ([UInt8](bytes), ArtifactStore.sha256(bytes))
    }

    func resolveBase(name: String?, model: URL?, actor: String) throws -> String {
        switch (name, model) {
        case let (name?, nil):
            return try registry.baseModel(named: name).name
        case let (nil, model?):
            let n = model.standardizedFileURL.lastPathComponent
            if let existing = try? registry.baseModel(named: n) { return existing.name }
            do {
                // An http(s) URL is fetched and recorded by its URL, so any worker can fetch it; a local
                // path (or file URL) is recorded as its path.
                if let scheme = model.scheme?.lowercased(), scheme == "http" || scheme == "https" {
                    return try registry.addBaseModel(name: n, spec: model.absoluteString, actor: actor).name
                }
                return try registry.addBaseModel(name: n, source: model, actor: actor).name
            } catch RegistryError.alreadyExists {
                return n // registered concurrently by another submission
            }
        default:
            throw ModelError.invalidArgument("give --base NAME or --model SRC (exactly one)")
        }
    }

    /// Jobs newest first, optionally in one state and of one task (a valid task name, as over HTTP).
    public func jobs(status: JobRecord.Status? = nil, task: String? = nil) throws -> [JobRecord] {
        if let task { try Names.validateTask(task) }
        return try registry.pool.withConnection { try store.jobs(status: status, task: task, on: $0) }
    }

    public func job(_ id: Int) throws -> JobRecord {
        guard let j = try registry.pool.withConnection({ try store.job(id: id, on: $0) }) else {
            throw RegistryError.notFound(kind: "job", name: String(id))
        }
        return j
    }

    public func cancel(_ id: Int, actor: String = RegistryService.defaultActor()) throws -> JobRecord {
        try registry.pool.withConnection { try store.cancel(id: id, actor: actor, on: $0) }
    }

    public func events(_ id: Int, after: Int = 0) throws -> [JobEvent] {
        _ = try job(id)
        return try registry.pool.withConnection { try store.events(job: id, after: after, on: $0) }
    }

    /// Calls `onEvent` for every event of the job, then keeps waiting (LISTEN) for new ones
    /// until the job is final and its events are drained.
    public func follow(_ id: Int, onEvent: (JobEvent) throws -> Void) throws {
        let listener = try Connection(registry.pool.conninfo)
        try listener.listen(JobStore.eventChannel)
        var last = 0
        while true {
            let final = try job(id).status.isFinal
            for e in try events(id, after: last) { try onEvent(e); last = e.id }
            if final { return }
            _ = try listener.waitForNotification(timeout: 1)
        }
    }
}
