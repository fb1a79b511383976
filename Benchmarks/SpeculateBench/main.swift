// Prompt-lookup speculation on a set of prompts (not a test: timings vary with machine load).
//
// Usage: SpeculateBench [--model M.gguf] [--adapter DIR] [--data FILE.jsonl] [--speculate K] [--lookup-ngram N] [--lookup-min-ngram M]
//                       [--max-tokens T] [--reps R] [--limit P] [--no-stop]
// Each prompt ({"prompt": ...} lines of FILE) is generated greedily with and without speculation, in
// alternating order, R times; the two outputs must be the same tokens (else it exits 1). Prints the
// acceptance rate (accepted / drafted), tokens per forward, and generated tokens/s plain vs
// speculative (each the median of the R passes' totals; the whole `generate` call is timed, prompt
// prefill included, the same work in both) and their ratio.
import Foundation
import Model
import Service
import Training

setvbuf(stdout, nil, _IOLBF, 0)

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("SpeculateBench: \(message)\n".utf8))
    exit(1)
}

var args = Array(CommandLine.arguments.dropFirst())
func value(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name) else { return nil }
    guard i + 1 < args.count else { fail("\(name) needs a value") }
    defer { args.removeSubrange(i...i + 1) }
    return args[i + 1]
}
func int(_ name: String, _ def: Int) -> Int {
    guard let s = value(name) else { return def }
    guard let v = Int(s) else { fail("\(name): expected an integer, got \(s)") }
    return v
}
let modelPath = value("--model") ?? (NSHomeDirectory() + "/.cache/lora/models/SmolLM2-135M-Instruct.Q4_1.gguf")
let adapterPath = value("--adapter")
let dataPath = value("--data") ?? "adapters/order-extract/eval.jsonl"
let k = int("--speculate", 8), ngram = int("--lookup-ngram", PromptLookup.defaultNgram)
let minNgram = value("--lookup-min-ngram").map { s -> Int in
    guard let v = Int(s) else { fail("--lookup-min-ngram: expected an integer, got \(s)") }
    return v
}
let maxTokens = int("--max-tokens", 32), reps = int("--reps", 3), limit = int("--limit", Int.max)
let noStop = args.contains("--no-stop")
args.removeAll { $0 == "--no-stop" }
if !args.isEmpty { fail("unknown arguments \(args)") }
guard reps >= 1, maxTokens >= 1, limit >= 1 else { fail("--reps, --max-tokens and --limit must be >= 1") }
let lookup: PromptLookup
do {
    guard let l = try PromptLookup.make(draftTokens: k, ngram: ngram, minNgram: minNgram) else { fail("--speculate must be >= 1 here") }
    lookup = l
} catch { fail("\(error)") }

let lm = try LanguageModel.load(path: modelPath)
let adapters = try adapterPath.map { AdapterSet([try TrainingService.loadAdapter(URL(fileURLWithPath: $0), for: lm) { _ in }]) } ?? .none
let prompts = try JSONLReader.readTextRecords(URL(fileURLWithPath: dataPath)).prefix(limit).map { record -> String in
    guard case let .promptCompletion(prompt, _) = record else { fail("\(dataPath): records must be {\"prompt\", \"completion\"}") }
    return prompt
}
guard !prompts.isEmpty else { fail("\(dataPath): no records") }
let service = InferenceService(model: lm)
var plainOptions = InferenceService.GenerateOptions()
plainOptions.maxTokens = maxTokens
// The shipped tasks answer on one line: stop at its end, as a caller of the task would.
plainOptions.stop = noStop ? [] : ["\n"]
var specOptions = plainOptions
specOptions.speculation = lookup
print("model \(modelPath), adapter \(adapterPath ?? "none"), \(prompts.count) prompts of \(dataPath), K \(k), N \(ngram), min \(lookup.minNgram), "
      + "max tokens \(maxTokens), stop \(noStop ? "none" : "newline"), \(reps) passes")

// One untimed pass of each first (page cache, allocator, thread pool).
_ = try service.generate(prompt: prompts[0], options: plainOptions, adapters: adapters)
_ = try service.generate(prompt: prompts[0], options: specOptions, adapters: adapters)

var plainRates: [Double] = [], specRates: [Double] = []
var drafted = 0, accepted = 0, tokens = 0, steps = 0, plainSteps = 0
for rep in 0..<reps {
    var plainTime = 0.0, specTime = 0.0, generated = 0
    for (i, p) in prompts.enumerated() {
        var plain: GenerationResult?, spec: GenerationResult?
        // Alternate which runs first, so neither always finds the caches warm.
        for speculative in (i + rep) % 2 == 0 ? [false, true] : [true, false] {
            let t0 = now()
            let r = try service.generate(prompt: p, options: speculative ? specOptions : plainOptions, adapters: adapters)
            let dt = now() - t0
            if speculative { spec = r; specTime += dt } else { plain = r; plainTime += dt }
        }
        guard plain!.tokens == spec!.tokens else {
            fail("prompt \(i): speculative output \(spec!.tokens) differs from plain \(plain!.tokens)")
        }
        generated += plain!.tokens.count
        if rep == 0 {
            drafted += spec!.draftedTokens; accepted += spec!.acceptedTokens
            tokens += spec!.tokens.count; steps += spec!.decodeSteps; plainSteps += plain!.decodeSteps
        }
    }
    plainRates.append(Double(generated) / plainTime)
    specRates.append(Double(generated) / specTime)
    print(String(format: "pass %d: %d tokens, plain %.1f tokens/s, speculative %.1f tokens/s", rep + 1, generated,
                 plainRates.last!, specRates.last!))
}
let plainRate = median(plainRates), specRate = median(specRates)
print("outputs identical: yes (\(prompts.count) prompts x \(reps) passes)")
print(String(format: "acceptance rate: %.1f%% (%d of %d drafted tokens)", drafted == 0 ? 0 : 100 * Double(accepted) / Double(drafted),
             accepted, drafted))
print(String(format: "decode forwards: plain %d, speculative %d (%.2f tokens per forward after the first token)",
             plainSteps, steps, steps == 0 ? 0 : Double(tokens - prompts.count) / Double(steps)))
print(String(format: "tokens/s plain: %.1f", plainRate))
print(String(format: "tokens/s speculative: %.1f", specRate))
print(String(format: "ratio speculative/plain: %.2fx", specRate / plainRate))
