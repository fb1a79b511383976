import Foundation
import Kernels

public enum FinishReason: String, Sendable, Codable {
    /// An end-of-sequence token or a stop string.
    case stop
    /// The token limit.
    case length
}

public struct GenerationRequest: Sendable {
    public var prompt: [Int]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    public var stopStrings: [String]
    /// Token ids that end generation (not included in the output).
    public var eosTokenIds: Set<Int>
    /// The prompt is prefilled in forward calls of this many tokens (the last one shorter): the
    /// boundaries depend only on the prompt, as in the serving engine, so both compute the same bits.
    public var prefillChunk: Int
    /// Prompt-lookup speculation (nil: off): drafts verified in one forward per step; the output is
    /// token for token what it is without (greedy, and seeded sampling).
    public var speculation: PromptLookup?

    public init(prompt: [Int], maxTokens: Int, sampling: SamplingParameters = .greedy,
                stopStrings: [String] = [], eosTokenIds: Set<Int>, prefillChunk: Int = LlamaModel.defaultPrefillChunk,
                speculation: PromptLookup? = nil) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling
        self.stopStrings = stopStrings; self.eosTokenIds = eosTokenIds; self.prefillChunk = prefillChunk
        self.speculation = speculation
    }
}

public struct GenerationResult: Sendable {
    /// Generated ids, excluding an EOS that ended generation.
    public var tokens: [Int]
    public var text: String
    public var finishReason: FinishReason
    /// Speculation: draft tokens proposed, and how many of them the model accepted.
    public var draftedTokens = 0
    public var acceptedTokens = 0
    /// Forward calls after the prompt's (decode or verification steps).
    public var decodeSteps = 0
    /// Rows that chose a token or verified a draft (each step's decode row, or the prompt's last row,
    /// plus its drafts), and those whose LM head was computed (not rows past a rejected draft's window).
    public var fedRows = 0
    public var headRows = 0
}

extension LlamaModel {
    /// Prompt tokens per prefill forward call, unless a request says otherwise; the serving engine's
    /// too, so `lora generate` and `lora serve` compute the same bits. 256 rows make each dequantized,
    /// packed weight tile serve 4 times the rows 64 did (prefill spent 15% of its time dequantizing and
    /// packing tiles at 64); the serving engine bounds the prompt rows of a step separately.
    public static let defaultPrefillChunk = 256

    /// Prefills the prompt in chunks of `request.prefillChunk` tokens (each one batched forward
    /// pass), then decodes one token at a time from the
    /// KV cache. `decode` turns generated ids into text (for stop strings and the result);
    /// `onText` receives each new piece of text as it becomes final.
    public func generate(_ request: GenerationRequest, adapters: AdapterSet = .none,
                         decode: ([Int]) -> String,
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        try request.sampling.validate()
        guard !request.prompt.isEmpty else { throw ModelError.invalidArgument("the prompt encodes to no tokens") }
        guard request.maxTokens >= 0 else { throw ModelError.invalidArgument("max tokens must be >= 0") }
        guard request.prefillChunk >= 1 else { throw ModelError.invalidArgument("the prefill chunk must be >= 1 token") }
        let capacity = request.prompt.count + request.maxTokens
        if capacity > config.maxPositionEmbeddings && config.maxPositionEmbeddings > 0 {
            throw ModelError.invalidArgument("prompt (\(request.prompt.count) tokens) + max tokens (\(request.maxTokens)) exceeds the model's context of \(config.maxPositionEmbeddings)")
        }
        let cache = KVCache(config: config, capacity: max(1, capacity))
        let ws = Workspace()
        let V = config.vocabSize, D = config.hiddenSize
        var hidden = FloatBuffer(count: request.prompt.count * D)
        var logitsBuf = FloatBuffer(count: V)
        defer { hidden.free(); logitsBuf.free() }
        var sampler = Sampler(request.sampling)
        var out: [Int] = []
        out.reserveCapacity(request.maxTokens)   // no regrowth while decoding
        var emitted = ""   // text already handed to onText
        var finish = FinishReason.length

        // Every prompt chunk but the last only fills the cache; no logits are needed from it.
        var start = 0
        while request.maxTokens > 0 && request.prompt.count - start > request.prefillChunk {
            let chunk = Array(request.prompt[start..<(start + request.prefillChunk)])
            hidden.reserve(chunk.count * D)
            try forward(chunk, cache: cache, adapters: adapters, workspace: ws, hidden: hidden.pointer)
            start += chunk.count
        }
        var input = Array(request.prompt[start...])
        // Speculation: `drafts` follow `input`'s one token in the next forward (decode-row kernels,
        // row by row, so each row's logits are a lone decode step's bits); `context` is prompt + output.
        var drafts: [Int] = []
        var context = request.speculation == nil ? [] : request.prompt
        var drafted = 0, accepted = 0, steps = 0
        var length = request.speculation.map(DraftLength.init)
        var stood = 0   // drafts accepted in this step
        var fedRows = 0, headRows = 0
        func result(_ tokens: [Int], _ text: String, _ reason: FinishReason) -> GenerationResult {
            var r = GenerationResult(tokens: tokens, text: text, finishReason: reason)
            r.draftedTokens = drafted; r.acceptedTokens = accepted; r.decodeSteps = max(0, steps - 1)
            r.fedRows = fedRows; r.headRows = headRows
            return r
        }
        decoding: while out.count < request.maxTokens {
            let p0 = cache.count
            let rows: Int
            var computed = 1   // rows whose logits are in logitsBuf
            if drafts.isEmpty {
                hidden.reserve(input.count * D)
                try forward(input, cache: cache, adapters: adapters, workspace: ws, hidden: hidden.pointer)
                // Only the last position's logits are needed to choose the next token.
                logits(hidden: hidden.pointer + (input.count - 1) * D, tokens: 1, into: logitsBuf.pointer)
                rows = 1
            } else {
                rows = 1 + drafts.count
                hidden.reserve(rows * D)
                logitsBuf.reserve(rows * V)
                try forwardBatch([BatchSegment(tokens: input + drafts, cache: cache, adapters: adapters, rowwise: true)],
                                 workspace: ws, hidden: hidden.pointer)
                drafted += drafts.count
                computed = 0   // the LM head runs below, only for rows whose drafts before them stood
            }
            steps += 1
            stood = 0
            fedRows += rows
            headRows += computed
            // Row i's logits choose the token after row i's; row i + 1 holds draft i, which stands
            // only if it is that token (the sampler draws once per emitted token, as without drafts).
            for i in 0..<rows {
                if i >= computed {
                    let w = PromptLookup.logitsWindow(computed: computed, rows: rows)
                    logitsRows(hidden: hidden.pointer + w.lowerBound * D, rows: w.count, into: logitsBuf.pointer + w.lowerBound * V)
                    computed = w.upperBound
                    headRows += w.count
                }
                let next = sampler.sample(logitsBuf.pointer + i * V, count: V)
                if request.eosTokenIds.contains(next) { finish = .stop; break decoding }
                out.append(next)
                if request.speculation != nil { context.append(next) }
                if !request.stopStrings.isEmpty || onText != nil {
                    let text = decode(out)
                    if let cut = Self.firstStop(in: text, stops: request.stopStrings) {
                        let final = String(text[..<cut])
                        if let onText, final.count > emitted.count { onText(String(final.dropFirst(emitted.count))) }
                        return result(out, final, .stop)
                    }
                    if let onText {
                        // Hold back a trailing replacement character (an incomplete UTF-8 sequence) and any
                        // suffix that could still grow into a stop string.
                        var stable = text
                        while stable.hasSuffix("\u{FFFD}") { stable.removeLast() }
                        let hold = Self.longestStopPrefixSuffix(stable, stops: request.stopStrings)
                        stable.removeLast(hold)
                        if stable.count > emitted.count, stable.hasPrefix(emitted) {
                            onText(String(stable.dropFirst(emitted.count)))
                            emitted = stable
                        }
                    }
                }
                if out.count >= request.maxTokens { break decoding }
                if i < drafts.count && next == drafts[i] { accepted += 1; stood += 1; continue }
                // Rows after i were fed a rejected draft: their keys and values are forgotten.
                if !drafts.isEmpty { cache.truncate(to: p0 + i + 1) }
                input.removeAll(keepingCapacity: true)   // reused: a decode step allocates nothing
                input.append(next)
                break
            }
            length?.record(drafted: drafts.count, accepted: stood)
            // A draft needs a place in the cache and a token left to emit after it.
            drafts = request.speculation?.draft(context, limit: min(length?.next ?? 0, request.maxTokens - out.count - 1)) ?? []
        }
        let text = decode(out)
        if let onText, text.count > emitted.count, text.hasPrefix(emitted) { onText(String(text.dropFirst(emitted.count))) }
        return result(out, text, finish)
    }

    /// The earliest position (across all stop strings) where one of them occurs in `text`.
    public static func firstStop(in text: String, stops: [String]) -> String.Index? {
        var best: String.Index?
        for s in stops where !s.isEmpty {
            if let r = text.range(of: s), best == nil || r.lowerBound < best! { best = r.lowerBound }
        }
        return best
    }

    /// Length in characters of the longest suffix of `text` that is a proper prefix of a stop string.
    public static func longestStopPrefixSuffix(_ text: String, stops: [String]) -> Int {
        var best = 0
        for s in stops where s.count > 1 {
            for n in stride(from: min(s.count - 1, text.count), to: best, by: -1)
            where text.hasSuffix(String(s.prefix(n))) { best = n; break }
        }
        return best
    }
}
