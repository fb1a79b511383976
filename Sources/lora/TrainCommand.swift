import ArgumentParser
import Foundation
import Model
import Service
import Training

extension LRScheduler: ExpressibleByArgument {}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a LoRA adapter over a frozen base model; writes PEFT's adapter format.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Training data: JSONL of {\"text\"} or {\"prompt\",\"completion\"} records.") var data: String
    @Option(help: "Where to write adapter_config.json and adapter_model.safetensors.") var output: String
    @Option(help: "Held-out data, scored every --eval-every steps and at the end.") var evalData: String?
    @Option(help: "Evaluate every N optimizer steps.") var evalEvery: Int?
    @Option(help: "LoRA rank.") var rank: Int = 16
    @Option(help: "LoRA alpha.") var alpha: Float = 32
    @Option(help: "Dropout on the LoRA input.") var dropout: Float = 0.05
    @Option(help: "Comma-separated modules (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all-linear.") var targets: String = "all-linear"
    @Flag(help: "rsLoRA scaling: alpha / sqrt(rank).") var rslora = false
    @Option(help: "Peak learning rate.") var lr: Float = 2e-4
    @Option(help: "Passes over the data.") var epochs: Int?
    @Option(help: "Stop after this many optimizer steps (instead of epochs).") var maxSteps: Int?
    @Option(help: "Records per micro-batch.") var batchSize: Int = 4
    @Option(help: "Micro-batches per optimizer step.") var gradAccum: Int = 1
    @Option(help: "Records are truncated to this many tokens.") var maxSeqLen: Int = 1024
    @Option(help: "constant, constant_with_warmup, linear or cosine.") var scheduler: LRScheduler = .cosine
    @Option(help: "Warmup steps.") var warmupSteps: Int?
    @Option(help: "Warmup as a fraction of all steps (default 0.03).") var warmupRatio: Float?
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0
    @Option(help: "Clip gradients to this global norm (0 disables).") var maxGradNorm: Float = 1.0
    @Option(help: "Seed for initialisation, shuffling and dropout.") var seed: UInt64 = 42
    @Flag(help: "Keep the data file's order.") var noShuffle = false
    @Option(help: "Start from this PEFT adapter instead of a fresh one.") var initAdapter: String?
    @Flag(help: "Concatenate records into full-length rows (attention stays within each record).") var packing = false
    @Flag(help: "Recompute each block in the backward instead of keeping its activations.") var gradCheckpointing = false
    @Option(help: "Save a checkpoint every N optimizer steps.") var checkpointEvery: Int?
    @Option(help: "Keep only the newest K checkpoints.") var keepCheckpoints: Int?
    @Flag(help: "Continue from the newest checkpoint under --output (same flags and data).") var resume = false
    @Flag(help: "Keep the adapter with the best eval loss in OUTPUT/best.") var keepBest = false
    @Option(help: "At each evaluation, generate for K eval records and report exact-match accuracy.") var evalGenerate: Int?
    @Flag(help: "Print settings, one JSON object per step and evaluation, and a final summary.") var json = false

    func validate() throws {
        if epochs != nil && maxSteps != nil { throw ValidationError("give --epochs or --max-steps, not both") }
        if warmupSteps != nil && warmupRatio != nil { throw ValidationError("give --warmup-steps or --warmup-ratio, not both") }
        _ = try settings()
    }

    func settings() throws -> TrainingSettings {
        var s = TrainingSettings()
        let mods: [LinearModule]
        if targets == "all-linear" {
            mods = LinearModule.allCases
        } else {
            mods = try targets.split(separator: ",").map { name in
                let n = name.trimmingCharacters(in: .whitespaces)
                guard let m = LinearModule(rawValue: n) else {
                    throw ValidationError("--targets: unknown module '\(n)'; expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear")
                }
                return m
            }
        }
        s.lora = LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, targets: LinearModule.allCases.filter(mods.contains), useRSLoRA: rslora)
        s.learningRate = lr
        s.epochs = epochs ?? 1
        s.maxSteps = maxSteps
        s.batchSize = batchSize
        s.gradientAccumulation = gradAccum
        s.maxSequenceLength = maxSeqLen
        s.scheduler = scheduler
        s.warmupSteps = warmupSteps
        s.warmupRatio = warmupSteps != nil ? nil : (warmupRatio ?? 0.03)
        s.weightDecay = weightDecay
        s.maxGradNorm = maxGradNorm > 0 ? maxGradNorm : nil
        s.seed = seed
        s.shuffle = !noShuffle
        s.evalEvery = evalEvery
        s.packing = packing
        s.gradientCheckpointing = gradCheckpointing
        if let n = checkpointEvery, n < 1 { throw ValidationError("--checkpoint-every must be >= 1, got \(n)") }
        if let k = keepCheckpoints, k < 1 { throw ValidationError("--keep-checkpoints must be >= 1, got \(k)") }
        if let k = evalGenerate, k < 1 { throw ValidationError("--eval-generate must be >= 1, got \(k)") }
        if (keepBest || evalGenerate != nil) && evalData == nil { throw ValidationError("--keep-best and --eval-generate need --eval-data") }
        do { try s.validate() } catch { throw ValidationError("\(error)") }
        return s
    }

    func run() throws {
        let s = try settings()
        let lm = try modelOptions.load()
        if json {
            struct Resolved: Encodable {
                let settings: TrainingSettings
                let model: String
                let quant: String
                let threads: Int
            }
            try printJSON(Resolved(settings: s, model: modelOptions.model, quant: modelOptions.quant.rawValue,
                                   threads: modelOptions.threads ?? ProcessInfo.processInfo.activeProcessorCount))
        }
        StopSignal.install()
        let service = TrainingService(model: lm)
        let progress = json ? nil : ProgressLine()
        var request = TrainingService.Request(
            data: URL(fileURLWithPath: data), evalData: evalData.map { URL(fileURLWithPath: $0) },
            output: URL(fileURLWithPath: output), settings: s, initAdapter: initAdapter.map { URL(fileURLWithPath: $0) })
        request.checkpointEvery = checkpointEvery
        request.keepCheckpoints = keepCheckpoints
        request.resume = resume
        request.keepBest = keepBest
        request.evalGenerate = evalGenerate ?? 0
        request.shouldStop = { StopSignal.requested }
        let started = Date()
        let result: TrainingService.Result
        do {
            result = try service.train(request) { event in report(event, progress: progress, started: started) }
        } catch let stop as Trainer.Interrupted {
            progress?.finishLine()
            FileHandle.standardError.write(Data("\(stop); checkpoint saved under \(output); continue with --resume\n".utf8))
            if json {
                struct Stopped: Encodable { let interrupted: Bool; let step: Int }
                try printJSON(Stopped(interrupted: true, step: stop.position.step))
            }
            throw ExitCode(128 + StopSignal.receivedSignal)
        }
        progress?.finishLine()
        if json {
            struct Done: Encodable { let done: Bool; let adapter: String; let train_loss: Double?; let eval_loss: Double?; let steps: Int; let tokens_per_s: Double; let peak_rss_bytes: Int }
            try printJSON(Done(done: true, adapter: result.adapter.path, train_loss: result.trainLoss, eval_loss: result.evalLoss,
                               steps: result.steps, tokens_per_s: result.tokensPerSecond, peak_rss_bytes: ResourceUsage.peakRSSBytes()))
        } else {
            print(result.adapter.path)
        }
    }

    private func report(_ event: TrainingService.Event, progress: ProgressLine?, started: Date) {
        switch event {
        case let .step(r):
            if json {
                struct Step: Encodable { let step: Int; let loss: Double; let lr: Float; let grad_norm: Float; let tokens_per_s: Double }
                try? printJSON(Step(step: r.step, loss: r.loss, lr: r.lr, grad_norm: r.grad_norm, tokens_per_s: r.tokens_per_s))
            } else {
                let elapsed = Date().timeIntervalSince(started)
                let eta = Double(r.total_steps - r.step) * elapsed / Double(max(1, r.step))
                progress?.update(String(format: "step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA ", r.step, r.total_steps,
                                        r.loss, r.lr, r.tokens_per_s) + ProgressLine.duration(eta))
            }
        case let .eval(step, loss, accuracy):
            if json {
                struct Eval: Encodable { let step: Int; let eval_loss: Double; let eval_accuracy: Double? }
                try? printJSON(Eval(step: step, eval_loss: loss, eval_accuracy: accuracy))
            } else {
                progress?.finishLine()
                var line = String(format: "step %d  eval loss %.4f", step, loss)
                if let accuracy { line += String(format: "  exact match %.1f%%", accuracy * 100) }
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        case let .checkpoint(url):
            if json {
                struct Saved: Encodable { let checkpoint: String }
                try? printJSON(Saved(checkpoint: url.path))
            }
        }
    }
}
