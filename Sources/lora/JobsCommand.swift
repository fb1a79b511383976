import ArgumentParser
import Fetch
import Foundation
import Model
import Registry
import Service

extension JobRecord.Status: ExpressibleByArgument {}

/// `lora jobs submit|list|show|cancel|events`.
struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "Queue fine-tunes and follow them (a `lora worker` runs them).",
        subcommands: [JobsSubmit.self, JobsList.self, JobsShow.self, JobsCancel.self, JobsEvents.self, JobsPlot.self])
}

extension RegistryOptions {
    func openJobs() throws -> JobService { JobService(registry: try open()) }
}

func jobLine(_ j: JobRecord) -> String {
    var s = "job \(j.id)  \(j.status.rawValue)  task \(j.task)  base \(j.base)  attempt \(j.attempt)/\(j.maxAttempts)"
    if let v = j.version { s += "  version \(j.task)@\(v)" }
    if let e = j.error { s += "\n  error: \(e)" }
    return s
}

/// What `lora jobs submit` and `lora tune` queue.
struct SubmitOptions: ParsableArguments {
    @Option(help: "The task the adapter becomes a version of.") var task: String
    @Option(help: "A registered base model's name.") var base: String?
    @Option(help: "A model file or directory, or a URL of either; registered as a base model under its file or directory name if needed.") var model: String?
    @Option(help: "Training data: JSONL of {\"text\"} or {\"prompt\",\"completion\"} records (checked now, stored in the database).") var data: String
    @Option(help: "Held-out data, scored every --eval-every steps and at the end; its loss is the version's eval_loss.") var evalData: String?
    @OptionGroup var hyperparameters: HyperparameterOptions
    @Option(help: "How the worker holds the base's linear weights: auto, keep, nf4, int8, none.") var quant: QuantizationMode = .auto
    @Option(help: "Store a checkpoint in the database every N optimizer steps (a rescued job resumes from it).") var checkpointEvery: Int = 50
    @Flag(help: "Point production at the new version when the job succeeds.") var autoPromote = false
    @Flag(help: "With --auto-promote: only when its eval loss is no worse than production's.") var promoteIfBetter = false
    @Option(help: "Attempts before the job fails (failed attempts retry with exponential backoff).") var maxAttempts: Int = 3
    @Option(help: ArgumentHelp("The workers' --max-job-memory: the job's estimated memory must fit in it (bytes; K/M/G/T suffixes).",
                               valueName: "bytes"))
    var maxJobMemory = ByteSize(bytes: JobWorker.defaultMaxJobMemory)
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func validate() throws {
        if (base == nil) == (model == nil) { throw ValidationError("give --base NAME or --model SRC (exactly one)") }
        if checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be >= 1, got \(checkpointEvery)") }
        if maxAttempts < 1 { throw ValidationError("--max-attempts must be >= 1, got \(maxAttempts)") }
        if promoteIfBetter && !autoPromote { throw ValidationError("--promote-if-better needs --auto-promote") }
        if promoteIfBetter && evalData == nil { throw ValidationError("--promote-if-better compares eval loss: give --eval-data") }
    }

    /// Validates the data and queues the job, over either transport.
    func submit() throws -> (JobRecord, RegistryClient) {
        func url(_ p: String) -> URL { URL(fileURLWithPath: (p as NSString).expandingTildeInPath) }
        let hp = JobHyperparameters(settings: try hyperparameters.settings(), checkpointEvery: checkpointEvery, quant: quant.rawValue)
        let client = try RegistryClient(registry, server)
        if case let .server(api) = client {
            try client.refuseOverServer(model != nil, "--model", "give --base NAME, a base registered on the server (GET /v1/models lists them)")
            try client.refuseOverServer(maxJobMemory.bytes != JobWorker.defaultMaxJobMemory, "--max-job-memory",
                                        "the server's workers check a job against their own --max-job-memory")
            return (try RemoteJobSubmission(api: api, options: self, hyperparameters: hp, data: url(data), evalData: evalData.map(url)).run(), client)
        }
        var s = JobService.Submission(task: task, base: base,
                                      model: model.map { ModelFetcher.isRemote($0) ? URL(string: $0)! : url($0) }, data: url(data),
                                      evalData: evalData.map(url), hyperparameters: hp)
        s.autoPromote = autoPromote
        s.promoteIfBetter = promoteIfBetter
        s.maxAttempts = maxAttempts
        s.maxJobMemory = maxJobMemory.bytes
        return (try registry.openJobs().submit(s), client)
    }
}

struct JobsSubmit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Validate the data and queue a fine-tune; a worker registers the result as the task's next version.")
    @OptionGroup var options: SubmitOptions
    @Flag(help: "Follow the job until it ends (step, loss, learning rate, tokens/s, ETA); exit non-zero unless it succeeded.")
    var watch = false

    func run() throws {
        let (job, client) = try options.submit()
        try options.registry.emit(job) { "queued " + jobLine(job) }
        if watch { try JobWatch(client: client, json: options.registry.json).run(job.id) }
    }
}

/// `lora tune ...`: `lora jobs submit ... --watch`.
struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune", abstract: "Queue a fine-tune and follow it live until it ends (lora jobs submit --watch); exit non-zero unless it succeeded.")
    @OptionGroup var options: SubmitOptions

    func run() throws {
        let (job, client) = try options.submit()
        try options.registry.emit(job) { "queued " + jobLine(job) }
        try JobWatch(client: client, json: options.registry.json).run(job.id)
    }
}

struct JobsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Jobs, newest first.")
    @Option(help: "Only jobs in this state: queued, running, succeeded, failed, cancelled.") var status: JobRecord.Status?
    @Option(help: "Only jobs of this task.") var task: String?
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let jobs = try RegistryClient(registry, server).jobs(status: status, task: task)
        try registry.emit(ListEnvelope(jobs)) {
            table(["ID", "STATUS", "TASK", "BASE", "ATTEMPT", "VERSION", "CREATED"], jobs.map {
                [String($0.id), $0.status.rawValue, $0.task, $0.base, "\($0.attempt)/\($0.maxAttempts)",
                 $0.version.map(String.init) ?? "-", $0.createdAt]
            })
        }
    }
}

struct JobsShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One job.")
    @Argument(help: "Job id.") var id: Int
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let j = try RegistryClient(registry, server).job(id)
        try registry.emit(j) {
            jobLine(j) + "\n  data \(j.dataName) (\(j.dataSize) bytes, sha256 \(j.dataSHA256))"
                + "\n  created \(j.createdAt) by \(j.createdBy)" + (j.worker.map { "\n  worker \($0)" } ?? "")
        }
    }
}

struct JobsCancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a queued or running job (a running one stops within one optimizer step).")
    @Argument(help: "Job id.") var id: Int
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let j = try RegistryClient(registry, server).cancel(id)
        try registry.emit(j) { jobLine(j) }
    }
}

struct JobsEvents: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "A job's messages and per-step metrics.")
    @Argument(help: "Job id.") var id: Int
    @Flag(help: "Keep showing new events until the job finishes (with --json: one JSON object per line).") var follow = false
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let jobs = try RegistryClient(registry, server)
        if !follow {
            let events = try jobs.events(id)
            try registry.emit(ListEnvelope(events)) { events.map(Self.line).joined(separator: "\n") }
            return
        }
        let progress = registry.json ? nil : ProgressLine()
        try jobs.follow(id) { e in
            if registry.json { try printJSON(e); return }
            if e.type == .metrics, e.data["loss"] != nil, let progress {
                progress.update(Self.line(e))
            } else {
                progress?.finishLine()
                print(Self.line(e))
            }
        }
        progress?.finishLine()
        let j = try jobs.job(id)
        if !registry.json { print(jobLine(j)) }
    }

    static func line(_ e: JobEvent) -> String {
        if e.type == .metrics {
            let step = e.data["step"]?.intValue ?? 0
            if let loss = e.data["loss"]?.doubleValue {
                let total = e.data["total_steps"]?.intValue.map { "/\($0)" } ?? ""
                return String(format: "step %d%@  loss %.4f  %.0f tok/s", step, total, loss, e.data["tokens_per_s"]?.doubleValue ?? 0)
            }
            if let l = e.data["eval_loss"]?.doubleValue { return String(format: "step %d  eval loss %.4f", step, l) }
        }
        return "\(e.at)  [\(e.level.rawValue)] \(e.message)"
    }
}

struct JobsPlot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot", abstract: "Write a job's loss curves (train loss per step, eval loss per evaluation) as an SVG file.")
    @Argument(help: "Job id (N or ftjob-N).") var id: String
    @Option(help: "The SVG file to write (replaced atomically).") var output: String
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let digits = id.hasPrefix("ftjob-") ? String(id.dropFirst(6)) : id
        guard let n = Int(digits), n >= 1 else { throw ValidationError("job id must be N or ftjob-N, got '\(id)'") }
        let plot = try RegistryClient(registry, server).lossPlot(n)
        let url = URL(fileURLWithPath: (output as NSString).expandingTildeInPath)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        do {
            try Data(plot.svg().utf8).write(to: tmp)
            guard rename(tmp.path, url.path) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path]) }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw error
        }
        try registry.emit(["output": url.path, "train_points": String(plot.train.count), "eval_points": String(plot.eval.count)]) {
            "wrote \(url.path) (\(plot.train.count) steps, \(plot.eval.count) evaluations)"
        }
    }
}
