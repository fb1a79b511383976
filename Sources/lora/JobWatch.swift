import ArgumentParser
import Foundation
import Registry
import Service

/// `--watch` / `lora tune`: a job's events as they happen, step metrics as one progress line (step,
/// loss, learning rate, tokens/s, ETA; a line per step when stderr is not a terminal), then the
/// job's final state. Exits non-zero unless the job succeeded.
struct JobWatch {
    let client: RegistryClient
    let json: Bool

    func run(_ id: Int) throws {
        let progress = ProgressLine()
        var eta = ETA()
        try client.follow(id) { e in
            if json { try printJSON(e); return }
            if e.type == .metrics, e.data["loss"] != nil {
                let line = Self.line(e, eta: eta.update(e))
                if progress.isTTY { progress.update(line) } else { print(line); fflush(stdout) }
            } else {
                progress.finishLine()
                print(JobsEvents.line(e))
                fflush(stdout)
            }
        }
        progress.finishLine()
        let j = try client.job(id)
        if json { try printJSON(j) } else { print(jobLine(j)) }
        guard j.status == .succeeded else {
            FileHandle.standardError.write(Data("job \(j.id) \(j.status.rawValue)\(j.error.map { ": \($0)" } ?? "")\n".utf8))
            throw ExitCode.failure
        }
    }

    /// `step 3/10  loss 2.3456  lr 2.00e-04  512 tok/s  ETA 0m42s`.
    static func line(_ e: JobEvent, eta: Double?) -> String {
        let step = e.data["step"]?.intValue ?? 0
        let total = e.data["total_steps"]?.intValue.map { "/\($0)" } ?? ""
        var s = String(format: "step %d%@  loss %.4f", step, total, e.data["loss"]?.doubleValue ?? .nan)
        if let lr = e.data["lr"]?.doubleValue { s += String(format: "  lr %.2e", lr) }
        s += String(format: "  %.0f tok/s", e.data["tokens_per_s"]?.doubleValue ?? 0)
        if let eta { s += "  ETA " + ProgressLine.duration(eta) }
        return s
    }

    /// Seconds left, from the steps' own timestamps (replayed events arrive together, so the
    /// client's clock would not do): the mean time per step since the first step seen.
    struct ETA {
        private var first: (step: Int, at: Date)?
        private static let parser: ISO8601DateFormatter = {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return f
        }()

        mutating func update(_ e: JobEvent) -> Double? {
            guard let step = e.data["step"]?.intValue, let total = e.data["total_steps"]?.intValue,
                  let at = Self.parser.date(from: e.at) ?? ISO8601DateFormatter().date(from: e.at) else { return nil }
            guard let first, step > first.step else {
                if self.first == nil { self.first = (step, at) }
                return nil
            }
            return at.timeIntervalSince(first.at) / Double(step - first.step) * Double(max(0, total - step))
        }
    }
}

/// `lora jobs submit --server`: the data (and eval data) uploaded as files, then the job created
/// from them with every setting the flags give, as `POST /v1/fine_tuning/jobs` takes them.
struct RemoteJobSubmission {
    let api: RemoteAPI
    let options: SubmitOptions
    let hyperparameters: JobHyperparameters
    let data: URL
    let evalData: URL?

    private struct FileAnswer: Decodable { let id: String }

    func upload(_ url: URL) throws -> String {
        let bytes = try Data(contentsOf: url)
        let (body, type) = RemoteAPI.multipart(fields: [("purpose", "fine-tune")], file: ("file", url.lastPathComponent, bytes))
        return try api.decode(FileAnswer.self, try api.call(.post, "/v1/files", body: body, contentType: type), "/v1/files").id
    }

    func run() throws -> JobRecord {
        let s = hyperparameters.settings
        // A Float as its shortest decimal, which reads back as the same Float on the server.
        func f(_ x: Float) -> Double { Double("\(x)") ?? Double(x) }
        var hp: [String: Any] = [
            "batch_size": s.batchSize, "learning_rate": f(s.learningRate),
            "lora_r": s.lora.rank, "lora_alpha": f(s.lora.alpha), "lora_dropout": f(s.lora.dropout), "use_rslora": s.lora.useRSLoRA,
            "target_modules": s.lora.targets.map(\.rawValue), "max_seq_len": s.maxSequenceLength,
            "checkpoint_every": hyperparameters.checkpointEvery, "gradient_accumulation_steps": s.gradientAccumulation,
            "lr_scheduler": s.scheduler.rawValue, "weight_decay": f(s.weightDecay), "max_grad_norm": f(s.maxGradNorm ?? 0),
            "shuffle": s.shuffle, "packing": s.packing, "gradient_checkpointing": s.gradientCheckpointing,
            "max_bad_steps": s.maxBadSteps ?? 0, "quant": hyperparameters.quant,
        ]
        if let m = s.maxSteps { hp["max_steps"] = m } else { hp["n_epochs"] = s.epochs }
        if let w = s.warmupSteps { hp["warmup_steps"] = w } else if let r = s.warmupRatio { hp["warmup_ratio"] = f(r) }
        if let e = s.evalEvery { hp["eval_every"] = e }
        var body: [String: Any] = [
            "model": options.base!, "training_file": try upload(data), "suffix": options.task, "seed": s.seed,
            "hyperparameters": hp, "auto_promote": options.autoPromote, "promote_if_better": options.promoteIfBetter,
            "max_attempts": options.maxAttempts,
        ]
        if let evalData { body["validation_file"] = try upload(evalData) }
        return try api.post(JobRecord.self, "/v1/fine_tuning/jobs", json: body)
    }
}
