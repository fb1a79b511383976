// Decode and GEMV throughput of the default model (not a test: timings vary with machine load).
//
// Usage: DecodeBench [MODEL.gguf] [--steps N] [--reps N]   (ONLY=prefill: the prefill figures alone)
// Prints, for each figure, the median of `reps` repetitions after one warm-up.
import Foundation
import Kernels
import Model
import Quantization

setvbuf(stdout, nil, _IOLBF, 0)

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }

var args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ def: Int) -> Int {
    if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) { args.removeSubrange(i...i + 1); return v }
    return def
}
let steps = option("--steps", 64)
let reps = option("--reps", 3)
let path = args.first ?? (NSHomeDirectory() + "/.cache/lora/models/SmolLM2-135M-Instruct.Q4_1.gguf")

let loaded = try ModelLoader.load(URL(fileURLWithPath: path), quantization: .keep)
let model = LlamaModel(config: loaded.config, weights: loaded.weights)
let c = model.config
print("model \(loaded.description), threads \(Parallel.threads), lm_head \(type(of: model.weights.lmHead)), q \(type(of: model.weights.layers[0].q))")

// GEMV microbenchmarks: forwardRows for 1 and 8 rows over the model's own weights.
func gemvBench(_ name: String, _ w: LinearWeight, rows: Int) {
    let K = w.inFeatures, N = w.outFeatures
    var x = [Float](repeating: 0, count: rows * K)
    for i in x.indices { x[i] = Float((i * 7919) % 1000) / 1000 - 0.5 }
    var y = [Float](repeating: 0, count: rows * N)
    let iters = max(4, 20_000_000 / (N * K))
    var times: [Double] = []
    x.withUnsafeBufferPointer { xb in
        y.withUnsafeMutableBufferPointer { yb in
            for rep in 0...reps {
                let t0 = now()
                for _ in 0..<iters { w.forwardRows(xb.baseAddress!, rows: rows, into: yb.baseAddress!, accumulate: false) }
                if rep > 0 { times.append((now() - t0) / Double(iters)) }
            }
        }
    }
    let t = median(times)
    print(String(format: "gemv %-8@ %5dx%-5d rows %d: %8.1f us  (%.2f us/row)", name, N, K, rows, t * 1e6, t * 1e6 / Double(rows)))
}
let l0 = model.weights.layers[0]
// Each figure with the portable Swift kernels and, where the CPU has them, the AVX2 kernels, in one run.
let paths = QuantizedKernelDispatch.cpuHasAVX2 && ProcessInfo.processInfo.environment["NOAVX"] == nil ? [false, true] : [false]
for avx2 in paths where only == nil {
    QuantizedKernelDispatch.useAVX2 = avx2
    print("-- \(avx2 ? "AVX2" : "portable") kernels")
    for rows in [1, 8] {
        gemvBench("q", l0.q, rows: rows)
        gemvBench("gate", l0.gate, rows: rows)
        gemvBench("down", l0.down, rows: rows)
        gemvBench("lm_head", model.weights.lmHead, rows: rows)
    }
}

// Decode: `streams` sequences after a 16-token prompt each, one forwardBatch + logitsRows per step.
func decodeBench(streams: Int) throws -> Double {
    var results: [Double] = []
    let ws = Workspace()
    var hidden = [Float](repeating: 0, count: max(streams, 16) * c.hiddenSize)   // the 16-token prompt too
    var logits = [Float](repeating: 0, count: streams * c.vocabSize)
    for rep in 0...reps {
        let caches = (0..<streams).map { _ in KVCache(config: c, capacity: 16 + steps + 1) }
        var last = [Int](repeating: 0, count: streams)
        for s in 0..<streams {
            let prompt = (0..<16).map { 100 + (($0 * 31 + s * 17) % 5000) }
            try hidden.withUnsafeMutableBufferPointer { h in
                try model.forward(prompt, cache: caches[s], adapters: .none, workspace: ws, hidden: h.baseAddress!)
            }
            last[s] = prompt.last!
        }
        let t0 = now()
        for _ in 0..<steps {
            let segs = (0..<streams).map { BatchSegment(tokens: [last[$0]], cache: caches[$0]) }
            try hidden.withUnsafeMutableBufferPointer { h in
                try model.forwardBatch(segs, workspace: ws, hidden: h.baseAddress!)
                logits.withUnsafeMutableBufferPointer { o in
                    model.logitsRows(hidden: h.baseAddress!, rows: streams, into: o.baseAddress!)
                }
            }
            for s in 0..<streams {   // greedy
                let row = s * c.vocabSize
                var best = 0
                for v in 1..<c.vocabSize where logits[row + v] > logits[row + best] { best = v }
                last[s] = best
            }
        }
        let dt = now() - t0
        if rep > 0 { results.append(Double(steps * streams) / dt) }
    }
    return median(results)
}
// Before: the portable Swift kernels (the code this benchmark was added with); after: the AVX2 kernels.
var configs: [(String, Bool)] = [("portable", false)]
if paths.count > 1 { configs.append(("AVX2", true)) }
// ONLY=name runs that configuration's decode figures alone (e.g. under callgrind), GEMVs skipped.
let only = ProcessInfo.processInfo.environment["ONLY"]
for (name, avx2) in configs where only == nil || only == name {
    QuantizedKernelDispatch.useAVX2 = avx2
    let one = try decodeBench(streams: 1)
    print(String(format: "decode %-18@ 1 stream:  %7.1f tokens/s", name, one))
    let eight = try decodeBench(streams: 8)
    print(String(format: "decode %-18@ 8 streams: %7.1f tokens/s  (%.2fx of 1 stream)", name, eight, eight / one))
}

// Prefill: `prompts` prompts of `length` tokens in one forwardBatch (their chunks share each
// dequantized weight tile, `forwardChunks`) vs one forwardBatch per prompt (each dequantizes the
// whole base itself, as every prompt of a step did before prompts prefilled together). Tokens/s.
func prefillBench(prompts: Int, length: Int, together: Bool) throws -> Double {
    var results: [Double] = []
    let ws = Workspace()
    var hidden = [Float](repeating: 0, count: prompts * length * c.hiddenSize)
    for rep in 0...reps {
        let caches = (0..<prompts).map { _ in KVCache(config: c, capacity: length) }
        let segs = (0..<prompts).map { s in
            BatchSegment(tokens: (0..<length).map { 100 + (($0 * 31 + s * 17) % 5000) }, cache: caches[s])
        }
        let t0 = now()
        try hidden.withUnsafeMutableBufferPointer { h in
            if together {
                try model.forwardBatch(segs, workspace: ws, hidden: h.baseAddress!)
            } else {
                for s in segs { try model.forwardBatch([s], workspace: ws, hidden: h.baseAddress!) }
            }
        }
        let dt = now() - t0
        if rep > 0 { results.append(Double(prompts * length) / dt) }
    }
    return median(results)
}
if only == nil || only == "prefill" {
    for prompts in [1, 8] {
        let apart = try prefillBench(prompts: prompts, length: 24, together: false)
        let together = try prefillBench(prompts: prompts, length: 24, together: true)
        print(String(format: "prefill %d x 24 tokens: one call per prompt %7.1f tokens/s, one call for all %7.1f tokens/s (%.2fx)",
                     prompts, apart, together, together / apart))
    }
}
