import Foundation
import Model
import Registry
import Service
import Training

/// `POST /v1/fine_tuning/jobs`'s body, read field by field (every error names its field):
/// {model, training_file, validation_file?, suffix (the task), seed?, hyperparameters? or
/// method.supervised.hyperparameters?, auto_promote?, promote_if_better?, metadata?}.
enum JobRequest {
    /// OpenAI's `learning_rate_multiplier` multiplies this (QLoRA's learning rate, REFERENCE.md).
    static let baseLearningRate = 2e-4

    static func decode(_ body: JSON) throws -> JobService.FileSubmission {
        var r = try FieldReader(body)
        let model = try r.requiredString("model")
        let trainingText = try r.requiredString("training_file")
        guard let training = FineTuningShapes.id(trainingText, prefix: "file") else {
            throw APIError.invalid("training_file", .string(trainingText), expected: "a file id (file-N)")
        }
        var validation: Int?
        if let v = try r.string("validation_file") {
            guard let id = FineTuningShapes.id(v, prefix: "file") else { throw APIError.invalid("validation_file", .string(v), expected: "a file id (file-N)") }
            validation = id
        }
        guard let suffix = try r.string("suffix") else {
            throw APIError.missing("suffix", expected: "the task name the adapter becomes a version of")
        }
        do { try Names.validateTask(suffix) } catch {
            throw APIError.badRequest("Invalid value for `suffix`: \(error)", param: "suffix", code: "invalid_value")
        }
        var settings = TrainingSettings()
        var checkpointEvery = 50
        var quant = "auto"
        if let seed = try r.int("seed", in: 0...Int64(Int32.max), expected: "an integer in 0...2147483647") { settings.seed = UInt64(seed) }
        let direct = r.value("hyperparameters")
        var viaMethod: JSON?
        if let method = r.value("method") {
            var m = try FieldReader(method, path: "method")
            let type = try m.string("type") ?? "supervised"
            guard type == "supervised" else { throw APIError.unsupported("method.type", .string(type), "only supervised fine-tuning is implemented") }
            if let sup = m.value("supervised") {
                var s = try FieldReader(sup, path: "method.supervised")
                viaMethod = s.value("hyperparameters")
                try s.rejectUnread()
            }
            try m.rejectUnread()
        }
        if direct != nil && viaMethod != nil {
            throw APIError.badRequest("Give `hyperparameters` or `method.supervised.hyperparameters`, not both", param: "hyperparameters",
                                      code: "invalid_value")
        }
        if let hp = direct ?? viaMethod {
            try readHyperparameters(hp, path: direct != nil ? "hyperparameters" : "method.supervised.hyperparameters",
                                    into: &settings, checkpointEvery: &checkpointEvery, quant: &quant)
        }
        let autoPromote = try r.bool("auto_promote") ?? false
        let promoteIfBetter = try r.bool("promote_if_better") ?? false
        let maxAttempts = try r.int("max_attempts", in: 1...100, expected: "an integer in 1...100").map { Int($0) } ?? 3
        if promoteIfBetter && !autoPromote {
            throw APIError.badRequest("`promote_if_better` needs `auto_promote: true`", param: "promote_if_better", code: "invalid_value")
        }
        if promoteIfBetter && validation == nil {
            throw APIError.badRequest("`promote_if_better` compares validation loss: give `validation_file`", param: "promote_if_better",
                                      code: "invalid_value")
        }
        var metadata: JSONValue?
        if let m = r.value("metadata") {
            guard case let .object(pairs) = m, pairs.count <= 16, pairs.allSatisfy({ if case .string = $0.1 { return true }; return false }) else {
                throw APIError.invalid("metadata", m, expected: "an object of at most 16 string values")
            }
            metadata = FineTuningShapes.jsonValue(m)
        }
        try r.unsupported("integrations", neutral: Neutral.emptyArray, "no integrations are implemented")
        try r.rejectUnread()
        do { try settings.validate() } catch { throw APIError.badRequest("Invalid hyperparameters: \(error)", param: "hyperparameters", code: "invalid_value") }
        var s = JobService.FileSubmission(task: suffix, base: model, trainingFile: training, validationFile: validation,
                                          hyperparameters: JobHyperparameters(settings: settings, checkpointEvery: checkpointEvery, quant: quant),
                                          actor: RequestIdentity.actor)
        s.autoPromote = autoPromote
        s.promoteIfBetter = promoteIfBetter
        s.maxAttempts = maxAttempts
        s.metadata = metadata
        s.apiKey = RequestIdentity.key?.name
        return s
    }

    /// Each value may be `"auto"` (the default: QLoRA's recipe as `lora train` has it). Besides
    /// OpenAI's and the LoRA ones, every setting of `lora jobs submit` has a field here, so the
    /// CLI's client submits exactly what it would queue against the database.
    static func readHyperparameters(_ value: JSON, path: String, into s: inout TrainingSettings, checkpointEvery: inout Int,
                                    quant: inout String) throws {
        var h = try FieldReader(value, path: path)
        func auto(_ key: String) -> Bool { h.value(key) == .string("auto") }
        func int(_ key: String, _ range: ClosedRange<Int64>) throws -> Int? {
            if auto(key) { return nil }
            return try h.int(key, in: range, expected: "\"auto\" or an integer in \(range.lowerBound)...\(range.upperBound)").map { Int($0) }
        }
        func number(_ key: String, _ accept: @escaping (Double) -> Bool, _ expected: String) throws -> Double? {
            if auto(key) { return nil }
            return try h.number(key, accept: accept, expected: "\"auto\" or \(expected)")
        }
        let epochs = try int("n_epochs", 1...Int64(TrainingSettings.maxEpochs))
        let steps = try int("max_steps", 1...Int64(TrainingSettings.maxOptimizerSteps))
        if epochs != nil && steps != nil {
            throw APIError.badRequest("Give `\(path).n_epochs` or `\(path).max_steps`, not both", param: "\(path).max_steps", code: "invalid_value")
        }
        if let epochs { s.epochs = epochs }
        s.maxSteps = steps
        if let b = try int("batch_size", 1...Int64(TrainingSettings.maxBatchSize)) { s.batchSize = b }
        let lr = try number("learning_rate", { $0 > 0 && $0 < 1 }, "a number in (0, 1)")
        let mult = try number("learning_rate_multiplier", { $0 > 0 && $0 * JobRequest.baseLearningRate < 1 }, "a positive number")
        if lr != nil && mult != nil {
            throw APIError.badRequest("Give `\(path).learning_rate` or `\(path).learning_rate_multiplier`, not both",
                                      param: "\(path).learning_rate_multiplier", code: "invalid_value")
        }
        if let lr { s.learningRate = Float(lr) }
        if let mult { s.learningRate = Float(mult * JobRequest.baseLearningRate) }
        if let r = try int("lora_r", 1...65536) { s.lora.rank = r }
        if let a = try number("lora_alpha", { $0 > 0 && $0 < 1e6 }, "a positive number") { s.lora.alpha = Float(a) }
        if let d = try number("lora_dropout", { $0 >= 0 && $0 < 1 }, "a number in [0, 1)") { s.lora.dropout = Float(d) }
        if let m = try int("max_seq_len", 2...1 << 20) { s.maxSequenceLength = m }
        if let c = try int("checkpoint_every", 1...Int64(TrainingSettings.maxOptimizerSteps)) { checkpointEvery = c }
        if let v = try h.bool("use_rslora") { s.lora.useRSLoRA = v }
        if let g = try int("gradient_accumulation_steps", 1...Int64(TrainingSettings.maxGradientAccumulation)) { s.gradientAccumulation = g }
        if let text = try h.string("lr_scheduler"), text != "auto" {
            guard let v = LRScheduler(rawValue: text) else {
                throw APIError.invalid(h.name("lr_scheduler"), .string(text), expected: LRScheduler.allCases.map(\.rawValue).joined(separator: ", "))
            }
            s.scheduler = v
        }
        let warmupSteps = try int("warmup_steps", 0...Int64(TrainingSettings.maxOptimizerSteps))
        let warmupRatio = try number("warmup_ratio", { $0 >= 0 && $0 <= 1 }, "a number in [0, 1]")
        if warmupSteps != nil && warmupRatio != nil {
            throw APIError.badRequest("Give `\(path).warmup_steps` or `\(path).warmup_ratio`, not both", param: "\(path).warmup_ratio",
                                      code: "invalid_value")
        }
        if let warmupSteps { s.warmupSteps = warmupSteps; s.warmupRatio = nil }
        if let warmupRatio { s.warmupRatio = Float(warmupRatio) }
        if let w = try number("weight_decay", { $0 >= 0 && $0 < 1e6 }, "a non-negative number") { s.weightDecay = Float(w) }
        if let g = try number("max_grad_norm", { $0 >= 0 && $0 < 1e30 }, "a non-negative number (0: no clipping)") {
            s.maxGradNorm = g > 0 ? Float(g) : nil
        }
        if let v = try h.bool("shuffle") { s.shuffle = v }
        if let e = try int("eval_every", 1...Int64(TrainingSettings.maxOptimizerSteps)) { s.evalEvery = e }
        if let v = try h.bool("packing") { s.packing = v }
        if let v = try h.bool("gradient_checkpointing") { s.gradientCheckpointing = v }
        if let b = try int("max_bad_steps", 0...Int64(TrainingSettings.maxOptimizerSteps)) { s.maxBadSteps = b == 0 ? nil : b }
        if let q = try h.string("quant"), q != "auto" {
            guard QuantizationMode(rawValue: q) != nil else {
                throw APIError.invalid(h.name("quant"), .string(q), expected: QuantizationMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            quant = q
        }
        let key = h.name("target_modules")
        if let t = h.value("target_modules"), t != .string("auto"), t != .string("all-linear") {
            guard case let .array(items) = t, !items.isEmpty else {
                throw APIError.invalid(key, t, expected: "\"auto\", \"all-linear\" or a non-empty list of module names")
            }
            var mods: [LinearModule] = []
            for item in items {
                guard case let .string(n) = item, let m = LinearModule(rawValue: n) else {
                    throw APIError.invalid(key, item, expected: "one of " + LinearModule.allCases.map(\.rawValue).joined(separator: ", "))
                }
                mods.append(m)
            }
            s.lora.targets = LinearModule.allCases.filter(mods.contains)
        }
        try h.rejectUnread()
    }
}
