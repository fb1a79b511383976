import Foundation
import Registry
import Service

/// OpenAI's fine-tuning objects (files, jobs, events, checkpoints), fields in OpenAI's order.
/// Ids are strings with a prefix (`file-N`, `ftjob-N`, `ftevent-N`, `ftckpt-N`); times are unix seconds.
enum FineTuningShapes {
    /// `2026-11-27T09:43:52.123456Z` (the registry's timestamps) as unix seconds.
    static func unix(_ iso: String?) -> JSON {
        guard let iso, iso.count >= 19 else { return .null }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        guard let d = f.date(from: String(iso.prefix(19)) + "Z") else { return .null }
        return .int(Int64(d.timeIntervalSince1970))
    }

    /// `prefix-N` or `N` as N; nil for anything else.
    static func id(_ text: String, prefix: String) -> Int? {
        let digits = text.hasPrefix(prefix + "-") ? String(text.dropFirst(prefix.count + 1)) : text
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(digits), n >= 1 else { return nil }
        return n
    }

    static func file(_ f: FileRecord) -> JSON {
        .object([("object", "file"), ("id", .string("file-\(f.id)")), ("bytes", JSON(f.size)), ("created_at", unix(f.createdAt)),
                 ("filename", .string(f.filename)), ("purpose", .string(f.purpose)), ("status", "processed"),
                 ("status_details", .null), ("sha256", .string(f.sha256)), ("records", JSON(f.records))])
    }

    /// The job's status in OpenAI's words (the queue's states are the same words; a job waiting for
    /// a retry is `queued`).
    static func status(_ s: JobRecord.Status) -> String { s.rawValue }

    /// The hyperparameters as the job will run them, in OpenAI's names plus the LoRA ones.
    static func hyperparameters(_ job: JobRecord) -> JSON {
        guard let hp = try? JobHyperparameters.from(job.hyperparameters) else { return .object([]) }
        let s = hp.settings
        // Float settings as their shortest decimal (2e-4, not 0.00019999999494757503).
        func f(_ x: Float) -> JSON { .double(Double("\(x)") ?? Double(x)) }
        return .object([
            ("n_epochs", JSON(s.epochs)), ("batch_size", JSON(s.batchSize)),
            ("learning_rate_multiplier", f(Float(Double(s.learningRate) / JobRequest.baseLearningRate))),
            ("learning_rate", f(s.learningRate)),
            ("lora_r", JSON(s.lora.rank)), ("lora_alpha", f(s.lora.alpha)), ("lora_dropout", f(s.lora.dropout)),
            ("target_modules", .array(s.lora.targets.map { .string($0.rawValue) })),
            ("max_seq_len", JSON(s.maxSequenceLength)), ("max_steps", s.maxSteps.map { JSON($0) } ?? .null),
            ("checkpoint_every", JSON(hp.checkpointEvery)),
        ])
    }

    static func job(_ j: JobRecord, trainedTokens: Int? = nil) -> JSON {
        let hp = hyperparameters(j)
        let seed = (try? JobHyperparameters.from(j.hyperparameters)).map { JSON.int(Int64(truncatingIfNeeded: $0.settings.seed)) } ?? .null
        let error: JSON = j.status == .failed
            ? .object([("code", "job_failed"), ("message", .string(j.error ?? "failed")), ("param", .null)]) : .null
        return .object([
            ("object", "fine_tuning.job"), ("id", .string("ftjob-\(j.id)")), ("model", .string(j.base)),
            ("created_at", unix(j.createdAt)), ("finished_at", unix(j.finishedAt)),
            ("fine_tuned_model", j.version.map { .string("\(j.task)@\($0)") } ?? .null),
            ("organization_id", "lora"), ("result_files", .array([])), ("status", .string(status(j.status))),
            ("validation_file", j.validationFileID.map { .string("file-\($0)") } ?? (j.evalDataName.map { .string($0) } ?? .null)),
            ("training_file", .string(j.trainingFileID.map { "file-\($0)" } ?? j.dataName)),
            ("hyperparameters", hp), ("trained_tokens", trainedTokens.map { JSON($0) } ?? .null), ("error", error), ("user_provided_suffix", .string(j.task)),
            ("seed", seed), ("estimated_finish", .null), ("integrations", .array([])), ("metadata", json(j.metadata)),
            ("method", .object([("type", "supervised"), ("supervised", .object([("hyperparameters", hp)]))])),
            ("auto_promote", .bool(j.autoPromote)), ("promote_if_better", .bool(j.promoteIfBetter)),
            ("attempt", JSON(j.attempt)), ("max_attempts", JSON(j.maxAttempts)),
        ])
    }

    /// Step metrics in OpenAI's names: the worker logs `loss` and `eval_loss`.
    static func eventData(_ e: JobEvent) -> JSON {
        guard e.type == .metrics, let d = e.data.objectValue else { return json(e.data) }
        var out: [(String, JSON)] = [("step", json(d["step"] ?? .null))]
        if d["loss"] != nil {
            out += [("total_steps", json(d["total_steps"] ?? .null)), ("train_loss", json(d["loss"]!)), ("valid_loss", .null),
                    ("lr", json(d["lr"] ?? .null)), ("grad_norm", json(d["grad_norm"] ?? .null)),
                    ("tokens_per_s", json(d["tokens_per_s"] ?? .null))]
        } else {
            out += [("valid_loss", json(d["eval_loss"] ?? .null))]
            if let a = d["eval_accuracy"] { out.append(("valid_accuracy", json(a))) }
        }
        return .object(out)
    }

    static func eventMessage(_ e: JobEvent) -> String {
        guard e.type == .metrics, let d = e.data.objectValue else { return e.message }
        let step = d["step"]?.intValue ?? 0
        if let loss = d["loss"]?.doubleValue {
            let total = d["total_steps"]?.intValue.map { "/\($0)" } ?? ""
            return String(format: "Step %d%@: training loss=%.4f", step, total, loss)
        }
        if let l = d["eval_loss"]?.doubleValue { return String(format: "Step %d: validation loss=%.4f", step, l) }
        return e.message
    }

    static func event(_ e: JobEvent) -> JSON {
        let level: String
        switch e.level {
        case .debug, .info: level = "info"
        case .warning: level = "warn"
        case .error: level = "error"
        }
        return .object([("object", "fine_tuning.job.event"), ("id", .string("ftevent-\(e.id)")), ("created_at", unix(e.at)),
                        ("level", .string(level)), ("message", .string(eventMessage(e))), ("data", eventData(e)),
                        ("type", .string(e.type.rawValue))])
    }

    static func checkpoint(_ c: JobCheckpointRecord, job: JobRecord) -> JSON {
        .object([("object", "fine_tuning.job.checkpoint"), ("id", .string("ftckpt-\(c.id)")), ("created_at", unix(c.createdAt)),
                 ("fine_tuned_model_checkpoint", .string("\(job.task):ftjob-\(job.id):step-\(c.step)")),
                 ("fine_tuning_job_id", .string("ftjob-\(job.id)")),
                 ("metrics", .object([("step", JSON(c.step)), ("train_loss", c.trainLoss.map { .double($0) } ?? .null),
                                      ("valid_loss", c.validLoss.map { .double($0) } ?? .null)])),
                 ("step_number", JSON(c.step))])
    }

    /// `{"object": "list", "data": [...], "has_more": ...}`.
    static func list(_ items: [JSON], hasMore: Bool) -> JSON {
        .object([("object", "list"), ("data", .array(items)), ("has_more", .bool(hasMore))])
    }

    /// The registry's JSON values in the server's JSON.
    static func json(_ v: JSONValue?) -> JSON {
        switch v {
        case nil, .null?: return .null
        case let .bool(b)?: return .bool(b)
        case let .number(d)?: return d.rounded() == d && abs(d) < 1e15 ? .int(Int64(d)) : .double(d)
        case let .string(s)?: return .string(s)
        case let .array(a)?: return .array(a.map { json($0) })
        case let .object(o)?: return .object(o.keys.sorted().map { ($0, json(o[$0])) })
        }
    }

    static func jsonValue(_ v: JSON) -> JSONValue {
        switch v {
        case .null: return .null
        case let .bool(b): return .bool(b)
        case let .int(i): return .number(Double(i))
        case let .double(d): return .number(d)
        case let .string(s): return .string(s)
        case let .array(a): return .array(a.map(jsonValue))
        case let .object(o): return .object(Dictionary(o.map { ($0.0, jsonValue($0.1)) }, uniquingKeysWith: { _, b in b }))
        }
    }
}
