import ArgumentParser
import Fetch
import Foundation
import Kernels
import Model
import Quantization
import Service

extension ModelBenchmark.Kind: ExpressibleByArgument {}

/// `lora bench train|prefill|decode|gemv`: issue 15's speed figures on a model (`ModelBenchmark`).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Speed figures: training, prefill or decode tokens/s, decode GEMV microseconds, or the machine's bounds (median of repetitions).",
        discussion: "train: one optimizer step per repetition, LoRA rank 16 on every linear layer, dropout 0, batch 4 x 256. "
            + "prefill: a 250-token prompt in generate's chunks. decode: 128 greedy tokens, batch 1, after a 16-token prompt. "
            + "bounds: OpenBLAS sgemm GFLOP/s at training's shape and memory read GB/s over 256 MiB. "
            + "Figures vary with machine load; compare with a peer measured in the same run (scripts/bench/compare.sh).")

    @Argument(help: "What to measure: train, prefill, decode, gemv or bounds.")
    var kind: ModelBenchmark.Kind

    @Option(name: .long, help: "The base model (default: the default model in $LORA_HOME/models, else ~/.cache/lora/models).")
    var model: String?

    @Option(name: .long, help: "How linear weights are held: auto, keep, nf4, int8, none.")
    var quant: QuantizationMode = .auto

    @Option(name: .long, help: "Threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Timed repetitions; the figure is their median.")
    var repetitions = 3

    @Option(name: .long, help: "Untimed warm-up repetitions before them.")
    var warmups = 1

    @Option(name: .customLong("batch-size"), help: "train: rows per step.")
    var batchSize = 4

    @Option(name: .customLong("seq-len"), help: "train: tokens per row.")
    var seqLen = 256

    @Option(name: .long, help: "train: LoRA rank (every linear layer).")
    var rank = 16

    @Option(name: .customLong("prompt-tokens"), help: "prefill: prompt length.")
    var promptTokens = 250

    @Option(name: .customLong("prefill-chunk"), help: "prefill: prompt tokens per forward call (default: generate's chunk).")
    var prefillChunk = LlamaModel.defaultPrefillChunk

    @Option(name: .customLong("new-tokens"), help: "decode: tokens generated.")
    var newTokens = 128

    @Option(name: .long, help: "decode: decode N sequences together, one forwardBatch per step as lora serve runs it (figures: tokens/s over all rows, ms per step).")
    var rows: Int?

    @Option(name: .customLong("adapter-rank"), help: "decode --rows: a LoRA adapter of this rank on every row (0: none).")
    var adapterRank = 0

    @Option(name: .customLong("adapter-targets"), help: "decode --rows: the adapter's modules, comma-separated (default: all linear).")
    var adapterTargets = LinearModule.allCases.map(\.rawValue).joined(separator: ",")

    @Option(name: .long, help: "decode --rows: distinct adapters dealt to the rows in turn.")
    var adapters = 1

    @Flag(name: .customLong("count-allocations"), help: ArgumentHelp(
        "decode: count heap allocations per decoded token (per step with --rows) instead of timing; needs LD_PRELOAD=libLoraAllocCounter.so (built beside lora).",
        discussion: "Runs of N and 2N new tokens after a warm-up run; the figure is their difference over N, the samples the two runs' counts."))
    var countAllocations = false

    @Flag(name: .long, help: "Print one JSON document: {\"kind\",\"model\",\"quant\",\"threads\",\"shape\",\"figures\":[{\"name\",\"unit\",\"median\",\"samples\"}],\"peak_rss_bytes\"}.")
    var json = false

    static let defaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// Where the allocation counter is built: beside this binary.
    static var allocCounterLibrary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("libLoraAllocCounter.so").path
    }

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        if warmups < 0 { throw ValidationError("--warmups must be at least 0, got \(warmups)") }
        for (flag, v) in [("--batch-size", batchSize), ("--seq-len", seqLen), ("--rank", rank),
                          ("--prompt-tokens", promptTokens), ("--prefill-chunk", prefillChunk), ("--new-tokens", newTokens)] where v < 1 {
            throw ValidationError("\(flag) must be at least 1, got \(v)")
        }
        if let r = rows, r < 1 { throw ValidationError("--rows must be at least 1, got \(r)") }
        if adapterRank < 0 { throw ValidationError("--adapter-rank must be at least 0, got \(adapterRank)") }
        if adapters < 1 { throw ValidationError("--adapters must be at least 1, got \(adapters)") }
        if rows == nil && (adapterRank > 0 || adapters != 1) {
            throw ValidationError("--adapter-rank and --adapters need decode --rows N")
        }
        if rows != nil && kind != .decode { throw ValidationError("--rows applies to decode only, not \(kind.rawValue)") }
        if countAllocations && kind != .decode {
            throw ValidationError("--count-allocations applies to decode only, not \(kind.rawValue)")
        }
        _ = try parsedTargets()
    }

    func parsedTargets() throws -> [LinearModule] {
        if adapterTargets.split(separator: ",").isEmpty { throw ValidationError("--adapter-targets: at least one module") }
        return try adapterTargets.split(separator: ",").map { name in
            guard let m = LinearModule(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--adapter-targets: unknown module '\(name)' (known: \(LinearModule.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return m
        }
    }

    func run() throws {
        let path = model ?? ModelFetcher.defaultCacheDirectory().appendingPathComponent("models/\(Self.defaultModelFile)").path
        Parallel.configure(threads: threads)
        let lm = try LanguageModel.load(path: path, quantization: quant)
        var shape = ModelBenchmark.Shape()
        shape.batch = batchSize; shape.sequenceLength = seqLen; shape.rank = rank
        shape.promptTokens = promptTokens; shape.newTokens = newTokens; shape.prefillChunk = prefillChunk
        let c = lm.model.config
        if kind == .prefill && promptTokens > c.maxPositionEmbeddings && c.maxPositionEmbeddings > 0 {
            throw ValidationError("--prompt-tokens \(promptTokens) exceeds the model's context of \(c.maxPositionEmbeddings)")
        }
        if kind == .decode && shape.decodePromptTokens + newTokens > c.maxPositionEmbeddings && c.maxPositionEmbeddings > 0 {
            throw ValidationError("--new-tokens \(newTokens) exceeds the model's context of \(c.maxPositionEmbeddings)")
        }
        let bench = ModelBenchmark(model: lm.model, shape: shape, warmups: warmups, repetitions: repetitions)
        let figures: [ModelBenchmark.Figure]
        if countAllocations {
            guard let counter = AllocationCounter.preloaded() else {
                throw ValidationError("--count-allocations: the allocation counter is not loaded; run with "
                    + "LD_PRELOAD=\(Self.allocCounterLibrary) (swift build -c release builds it)")
            }
            figures = try bench.allocationsPerToken(counter, rows: rows, adapterRank: adapterRank,
                                                    adapterTargets: parsedTargets(), adapters: adapters)
        } else {
            figures = try rows.map { try bench.decodeRows(rows: $0, adapterRank: adapterRank, adapterTargets: parsedTargets(),
                                                          adapters: adapters) } ?? bench.run(kind)
        }
        if json {
            struct Out: Encodable {
                let kind: String; let model: String; let quant: String; let threads: Int
                let shape: ModelBenchmark.Shape; let figures: [ModelBenchmark.Figure]; let peak_rss_bytes: Int
            }
            try printJSON(Out(kind: kind.rawValue, model: lm.source.path, quant: quant.rawValue, threads: Parallel.threads,
                              shape: shape, figures: figures, peak_rss_bytes: ResourceUsage.peakRSSBytes()))
            return
        }
        // Decode rows' activations (`LORA_DECODE_ACTIVATIONS`), for A/B figures.
        let activations = kind == .decode ? ", decode activations \(QuantizedKernelDispatch.decodeActivations.rawValue)" : ""
        print("\(kind.rawValue): \(lm.source.lastPathComponent), quant \(quant.rawValue), \(Parallel.threads) threads, median of \(repetitions)\(activations)")
        for f in figures {
            let samples = f.samples.map { String(format: "%.1f", $0) }.joined(separator: " ")
            print(String(format: "  %@ %.1f %@  (%@)", f.name, f.median, f.unit, samples))
        }
        print(String(format: "  peak RSS %.1f MB", Double(ResourceUsage.peakRSSBytes()) / 1e6))
    }
}
