import ArgumentParser
import Foundation
import Model
import Training

/// The hyperparameter flags of `lora train`, shared with `lora jobs submit`.
struct HyperparameterOptions: ParsableArguments {
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
    @Flag(help: "Concatenate records into full-length rows (attention stays within each record).") var packing = false
    @Flag(help: "Recompute each block in the backward instead of keeping its activations.") var gradCheckpointing = false
    @Option(help: "Steps with a NaN or infinite loss or gradient norm skipped (no update) before training stops with an error.")
    var maxBadSteps: Int = 0

    func validate() throws {
        if epochs != nil && maxSteps != nil { throw ValidationError("give --epochs or --max-steps, not both") }
        if warmupSteps != nil && warmupRatio != nil { throw ValidationError("give --warmup-steps or --warmup-ratio, not both") }
        _ = try settings()
    }

    /// The training settings these flags describe (validated).
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
        s.maxBadSteps = maxBadSteps == 0 ? nil : maxBadSteps
        do { try s.validate() } catch { throw ValidationError("\(error)") }
        return s
    }
}
