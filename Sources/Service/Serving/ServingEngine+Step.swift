import Foundation
import Kernels
import Metrics
import Model

extension ServingEngine {
    func schedulerLoop() {
        while true {
            cond.lock()
            while !stopped && queue.isEmpty && running.isEmpty { cond.wait() }
            if stopped { cond.unlock(); return }
            cond.unlock()
            step()
        }
    }

    /// One scheduler step: retire cancelled sequences, admit queued ones up to `maxRunning`, run one
    /// forward call over every running sequence's rows (a decode token, or its next prompt chunk:
    /// prompts that arrive together prefill together, a chunk each per step up to
    /// `prefillRowsPerStep` prompt rows),
    /// sample where a sequence's last prompt chunk or decode token produced logits, emit events and
    /// retire what finished. Runs on the scheduler thread (tests may call it directly when not started).
    /// Returns the number of rows computed.
    @discardableResult
    public func step() -> Int {
        var clock = StepClock()
        cond.lock()
        var retired: [(EngineSequence, FinishReason?)] = []
        queue.removeAll { s in
            if s.isCancelled { retired.append((s, nil)); return true }
            return false
        }
        running.removeAll { s in
            if s.isCancelled { retired.append((s, nil)); return true }
            return false
        }
        while running.count < options.maxRunning && !queue.isEmpty {
            let s = queue.removeFirst()
            if s.maxTokens == 0 { retired.append((s, .length)); continue }
            running.append(s)
        }
        let batch = running
        cond.unlock()
        for (s, reason) in retired { s.retire(reason) }

        let config = model.model.config
        var segments: [BatchSegment] = []
        // Sequences whose rows give logits, in row order: the first such row, how many (a decode row
        // plus its drafts; 1 for a last prompt chunk), the drafts, and the cache count before the step.
        var sampled: [(seq: EngineSequence, row: Int, count: Int, drafts: [Int], past: Int)] = []
        var rows = 0
        // Decode rows first, then prefill chunks: the chunks are consecutive, so one
        // `forwardChunks` per weight serves them all (the weights' tiles dequantized once per step,
        // not once per prompt). Row order changes no row's bits.
        let decoding = batch.filter { $0.cache != nil && $0.prefilled >= $0.promptTokenIds.count }
        let prefilling = batch.filter { !($0.cache != nil && $0.prefilled >= $0.promptTokenIds.count) }
        // Prompt rows in this step: chunks are taken in admission order while they fit
        // `prefillRowsPerStep` (the first always), so decoding streams wait for at most that many
        // prompt rows a step however many prompts arrive; a chunk left out keeps its boundaries
        // (they depend on the prompt alone) and goes first in a later step.
        var prefillRows = 0
        for s in decoding + prefilling {
            if s.prefilled < s.promptTokenIds.count {
                let n = min(options.prefillChunk, s.promptTokenIds.count - s.prefilled)
                if prefillRows > 0 && prefillRows + n > options.prefillRowsPerStep { continue }
                prefillRows += n
            }
            if s.cache == nil { s.cache = KVCache(config: config, capacity: s.promptTokenIds.count + s.maxTokens) }
            let past = s.cache!.count
            var tokens: [Int]
            var rowwise = false
            if s.prefilled < s.promptTokenIds.count {
                let n = min(options.prefillChunk, s.promptTokenIds.count - s.prefilled)
                tokens = Array(s.promptTokenIds[s.prefilled..<(s.prefilled + n)])
                s.prefilled += n
                if s.prefilled == s.promptTokenIds.count { sampled.append((s, rows + n - 1, 1, [], past)) }
            } else {
                tokens = [s.lastToken]
                // Drafts need a place in the cache and a token left to emit after them; they are
                // verified row by row with the decode-row kernels (`rowwise`), a lone decode row's bits.
                let drafts = s.lookup?.draft(s.context, limit: min(s.draftLength?.next ?? 0, s.maxTokens - s.generatedCount - 1)) ?? []
                tokens += drafts
                rowwise = !drafts.isEmpty
                sampled.append((s, rows, tokens.count, drafts, past))
            }
            segments.append(BatchSegment(tokens: tokens, cache: s.cache!, adapters: s.adapters, rowwise: rowwise))
            rows += tokens.count
        }
        var finished: [(EngineSequence, FinishReason)] = []
        clock.mark(.plan)
        if rows > 0 {
            batchRows.record(rows)
            let D = config.hiddenSize, V = config.vocabSize
            hidden.reserve(rows * D)
            do {
                try model.model.forwardBatch(segments, workspace: workspace, hidden: hidden.pointer)
            } catch {
                for s in batch {
                    s.logger.error("forward failed: \(error)")
                    s.cancel(failing: .internalError("the forward pass failed: \(error)"))
                }
                clock.mark(.forward)
                finishStep(retire: [], rows: rows, clock: &clock)
                return rows
            }
            clock.mark(.forward)
            // Logits of the rows that choose a token, in rounds (each row's bits those of a lone row,
            // however rows are grouped): a round computes, for every sequence still choosing, its next
            // window of rows (`PromptLookup.logitsWindow`: a plain decode row or a last prompt chunk is
            // one row, done in the first round); a verification row's LM head runs only once every
            // draft before it stood.
            var progress = [Verification](repeating: Verification(), count: sampled.count)
            // Every round's rows fit (the windows of a step sum to at most its sampled rows); reserving
            // does not keep contents, so it happens once, here.
            lastRows.reserve(sampled.reduce(0) { $0 + $1.count } * D)
            let eos = model.eosTokenIds
            let now = DispatchTime.now().uptimeNanoseconds
            // Text to hand to the sequences' streams, in order: handed over together once every row of
            // the step chose its token, so the HTTP side the first hand-off wakes does not hold up the
            // rest of the step's choices (and finds the other sequences' text already queued).
            var texts: [(EngineSequence, String)] = []
            texts.reserveCapacity(sampled.count)
            for e in sampled { e.seq.fedRows += e.count }
            for (j, e) in sampled.enumerated() where !e.drafts.isEmpty {
                e.seq.draftedTokens += e.drafts.count
                draftedCounter.increment(by: e.drafts.count)
                progress[j].speculating = true
            }
            while true {
                var B = 0
                for (j, e) in sampled.enumerated() where !progress[j].done && progress[j].next >= progress[j].computed {
                    let w = PromptLookup.logitsWindow(computed: progress[j].computed, rows: e.count)
                    (lastRows.pointer + B * D).update(from: hidden.pointer + (e.row + w.lowerBound) * D, count: w.count * D)
                    progress[j].logitsRow = B - w.lowerBound
                    progress[j].computed = w.upperBound
                    e.seq.headRows += w.count
                    B += w.count
                }
                if B == 0 { break }
                logits.reserve(B * V)
                model.model.logitsRows(hidden: lastRows.pointer, rows: B, into: logits.pointer)
                clock.mark(.head)
                for (j, e) in sampled.enumerated() where !progress[j].done && progress[j].next < progress[j].computed {
                    let s = e.seq
                    // Row i chooses the token after row i; row i + 1 (draft i) stands only if it is that token.
                    while progress[j].next < progress[j].computed {
                        let i = progress[j].next
                        if let reason = advance(s, logits: logits.pointer + (progress[j].logitsRow + i) * V, vocab: V, eos: eos, now: now,
                                                    texts: &texts, clock: &clock) {
                            finished.append((s, reason))
                            progress[j].done = true
                            break
                        }
                        if i < e.drafts.count && s.lastToken == e.drafts[i] {
                            s.acceptedTokens += 1
                            progress[j].stood += 1
                            acceptedCounter.increment()
                            progress[j].next += 1
                            continue
                        }
                        // Rows after i were fed a rejected draft: their keys and values are forgotten.
                        if !e.drafts.isEmpty { s.cache!.truncate(to: e.past + i + 1) }
                        progress[j].done = true
                        break
                    }
                }
            }
            for (j, e) in sampled.enumerated() where progress[j].speculating {
                e.seq.draftLength?.record(drafted: e.drafts.count, accepted: progress[j].stood)
            }
            for (s, text) in texts { s.continuation.yield(.text(text)) }
            clock.mark(.emit)
        }
        finishStep(retire: finished, rows: rows, clock: &clock)
        return rows
    }

    /// Where a sequence's rows stand in a step's logits rounds.
    private struct Verification {
        /// The next row to sample, and the rows whose logits were computed (0..<computed).
        var next = 0, computed = 0
        /// Where row 0's logits would sit in this round's logits (rows of the window only are there).
        var logitsRow = 0
        var stood = 0
        var done = false
        var speculating = false
    }

    /// Samples one token for `s` and appends the text that became final to `texts` (handed to the
    /// stream at the end of the step); returns why the sequence ends, if it does. `clock` is charged
    /// for the choice (`sample`) and the text (`text`).
    private func advance(_ s: EngineSequence, logits: UnsafePointer<Float>, vocab V: Int, eos: Set<Int>, now: UInt64,
                         texts: inout [(EngineSequence, String)], clock: inout StepClock) -> FinishReason? {
        let next = s.sampler.sample(logits, count: V)
        if s.lastTokenAt == 0 { ttftTimer.recordNanoseconds(Int64(now - s.submittedAt)) } else {
            interTokenTimer.recordNanoseconds(Int64(now - s.lastTokenAt))
        }
        s.lastTokenAt = now
        clock.mark(.sample)
        if eos.contains(next) && !s.ignoreEOS { return .stop }
        s.appendToken(next)
        s.completionTokens.increment()
        var (text, stopped) = s.stopMatcher.push(s.decoder.push(next))
        if !stopped && s.generatedCount >= s.maxTokens {
            // The last token: release what the decoder and the stop matcher hold.
            let (tail, stoppedAtEnd) = s.stopMatcher.push(s.decoder.finish())
            text += tail
            stopped = stoppedAtEnd
            if !stopped { text += s.stopMatcher.flush() }
        }
        clock.mark(.text)
        if !text.isEmpty {
            if options.handOffPerStep { texts.append((s, text)) } else { s.continuation.yield(.text(text)); clock.mark(.emit) }
        }
        if stopped { return .stop }
        if s.generatedCount >= s.maxTokens { return .length }
        s.lastToken = next
        if s.lookup != nil { s.context.append(next) }
        return nil
    }

    /// Retires what finished, and publishes the step's clock (a step that computed rows).
    private func finishStep(retire finished: [(EngineSequence, FinishReason)], rows: Int, clock: inout StepClock) {
        cond.lock()
        let done = Set(finished.map { ObjectIdentifier($0.0) })
        running.removeAll { done.contains(ObjectIdentifier($0)) }
        cond.unlock()
        for (s, reason) in finished {
            s.retire(reason)
            s.logger.info("finished (\(reason.rawValue)) after \(s.generatedCount) tokens")
        }
        updateGauges()
        clock.mark(.finish)
        if rows > 0 { publish(clock, rows: rows) }
        cond.lock()
        cond.broadcast()
        cond.unlock()
    }

    private func publish(_ clock: StepClock, rows: Int) {
        phaseTimers.record(clock)
        stepTimesLock.lock()
        totals.steps += 1
        totals.rows += rows
        for i in 0..<StepTimes.Phase.allCases.count { totals.nanoseconds[i] &+= clock.phases[i] }
        stepTimesLock.unlock()
    }
}
