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
    @OptionGroup var hyperparameters: HyperparameterOptions
    @Option(help: "Start from this PEFT adapter instead of a fresh one.") var initAdapter: String?
    @Option(help: "Save a checkpoint every N optimizer steps.") var checkpointEvery: Int?
    @Option(help: "Keep only the newest K checkpoints.") var keepCheckpoints: Int?
    @Flag(help: "Continue from the newest checkpoint under --output (same flags and data).") var resume = false
    @Flag(help: "Keep the adapter with the best eval loss in OUTPUT/best.") var keepBest = false
    @Option(help: "At each evaluation, generate for K eval records and report exact-match accuracy.") var evalGenerate: Int?
    @Flag(help: "Print settings, one JSON object per step and evaluation, and a final summary.") var json = false

    func validate() throws {
        _ = try settings()
    }

    func settings() throws -> TrainingSettings {
        let s = try hyperparameters.settings()
        if let n = checkpointEvery, n < 1 { throw ValidationError("--checkpoint-every must be >= 1, got \(n)") }
        if let k = keepCheckpoints, k < 1 { throw ValidationError("--keep-checkpoints must be >= 1, got \(k)") }
        if let k = evalGenerate, k < 1 { throw ValidationError("--eval-generate must be >= 1, got \(k)") }
        if (keepBest || evalGenerate != nil) && evalData == nil { throw ValidationError("--keep-best and --eval-generate need --eval-data") }
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
        case let .skipped(step, reason):
            if json {
                struct Skipped: Encodable { let step: Int; let skipped: String }
                try? printJSON(Skipped(step: step, skipped: reason))
            } else {
                progress?.finishLine()
                FileHandle.standardError.write(Data("step \(step) skipped: \(reason)\n".utf8))
            }
        case let .checkpoint(url):
            if json {
                struct Saved: Encodable { let checkpoint: String }
                try? printJSON(Saved(checkpoint: url.path))
            }
        }
    }
}
