import ChatTemplate
import Foundation
import Model
import Registry
import Service
import ServiceTestSupport
import TestSupport
import Training
import XCTest

/// The engine on the default model with a real registry: output equal to `lora generate`'s
/// (InferenceService) under load, seeded sampling, cancellation, back-pressure and errors.
final class ServingEngineTests: EngineTestCase {
    static let prompts = ["The capital of France is", "List three colours:", "def add(a, b):"]

    /// What `lora generate` prints for a prompt, with the registry's adapter for `reference` (nil: the base).
    func generateExpected(_ prompt: String, reference: String?, maxTokens: Int, sampling: SamplingParameters = .greedy,
                          chunk: Int) throws -> GenerationResult {
        var options = InferenceService.GenerateOptions()
        options.maxTokens = maxTokens
        options.sampling = sampling
        options.prefillChunk = chunk
        var adapters = AdapterSet.none
        if let reference {
            let dir = try service.resolve(reference).directory
            adapters = AdapterSet([try TrainingService.loadAdapter(dir, for: model) { _ in }])
        }
        return try InferenceService(model: model).generate(prompt: prompt, options: options, adapters: adapters)
    }

    func testGreedyOutputEqualsGenerateForTheBaseAndAdaptersUnderLoad() throws {
        try importDefault("alpha", seed: 11, scale: 0.05)
        try importDefault("beta", seed: 12, scale: 0.05)
        let chunk = 8
        let e = try makeEngine { $0.prefillChunk = chunk }
        let long = String(repeating: "Ship 4 red lamps to Oslo. ", count: 4) + "The order is"
        let n = 10
        let expectBase = try generateExpected(Self.prompts[0], reference: nil, maxTokens: n, chunk: chunk)
        let expectAlpha = try generateExpected(Self.prompts[0], reference: "alpha", maxTokens: n, chunk: chunk)
        let expectBeta = try generateExpected(long, reference: "beta", maxTokens: n, chunk: chunk)
        XCTAssertNotEqual(expectAlpha.tokens, expectBase.tokens, "the adapter must change the output for this test to mean anything")

        // All at once: the long prompt prefills in several chunks while the others decode.
        let reqs: [(String, String)] = [("beta", long), (Self.baseName, Self.prompts[0]), ("alpha", Self.prompts[0]),
                                        ("alpha", Self.prompts[1]), (Self.baseName, Self.prompts[2])]
        let seqs = try reqs.enumerated().map { i, r in
            try e.submit(ServingRequest(model: r.0, input: .text(r.1), maxTokens: n, requestId: "r\(i)"))
        }
        let events = try seqs.map { try collect($0) }
        let results: [(GenerationResult, Int)] = [(expectBeta, 0), (expectBase, 1), (expectAlpha, 2)]
        for (expected, i) in results {
            XCTAssertEqual((seqs[i] as! EngineSequence).completionTokenIds, expected.tokens, "request \(reqs[i])")
            XCTAssertEqual(Self.text(events[i]), expected.text, "request \(reqs[i])")
            XCTAssertEqual(Self.finish(events[i]), expected.finishReason)
        }
        guard case let .admitted(served, promptTokens) = events[2].first else { return XCTFail("no admitted event first") }
        XCTAssertEqual(served.id, "alpha@1")
        XCTAssertEqual(served.version, 1)
        XCTAssertEqual(promptTokens, model.tokenizer.encode(Self.prompts[0], addSpecialTokens: true).count)
        guard case let .finished(_, p, c) = events[2].last else { return XCTFail("no finished event last") }
        XCTAssertEqual(p, promptTokens)
        XCTAssertEqual(c, expectAlpha.tokens.count)
        // Two adapters, each loaded once for all its requests.
        XCTAssertEqual(e.adapterCache!.statistics.loads, 2)
        XCTAssertEqual(e.runningCount, 0)
    }

    func testSeededSamplingIsReproducibleAloneAndUnderLoad() throws {
        try importDefault("alpha", seed: 11, scale: 0.05)
        let e = try makeEngine()
        let sampling = SamplingParameters(temperature: 0.9, topK: 40, topP: 0.95, seed: 1234)
        let n = 8
        let expected = try generateExpected(Self.prompts[1], reference: "alpha", maxTokens: n, sampling: sampling,
                                            chunk: LlamaModel.defaultPrefillChunk)
        let alone = try e.submit(ServingRequest(model: "alpha", input: .text(Self.prompts[1]), maxTokens: n,
                                                sampling: sampling, requestId: "alone"))
        _ = try collect(alone)
        var load: [ServingSequence] = []
        for (i, p) in Self.prompts.enumerated() {
            load.append(try e.submit(ServingRequest(model: i % 2 == 0 ? Self.baseName : "alpha", input: .text(p), maxTokens: n,
                                                    sampling: SamplingParameters(temperature: 1, seed: UInt64(i)), requestId: "load\(i)")))
        }
        let loaded = try e.submit(ServingRequest(model: "alpha", input: .text(Self.prompts[1]), maxTokens: n,
                                                 sampling: sampling, requestId: "loaded"))
        _ = try collect(loaded)
        for s in load { _ = try collect(s) }
        XCTAssertEqual((alone as! EngineSequence).completionTokenIds, expected.tokens)
        XCTAssertEqual((loaded as! EngineSequence).completionTokenIds, expected.tokens)
    }

    func testStopStringsCutTheOutputAsGenerateDoes() throws {
        let e = try makeEngine()
        var options = InferenceService.GenerateOptions()
        options.maxTokens = 12
        let full = try InferenceService(model: model).generate(prompt: Self.prompts[0], options: options)
        // A stop string that appears in the middle of the greedy output.
        let stop = String(full.text.dropFirst(3).prefix(3))
        options.stop = [stop]
        let expected = try InferenceService(model: model).generate(prompt: Self.prompts[0], options: options)
        let seq = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.prompts[0]), maxTokens: 12,
                                              stop: [stop], requestId: "stop"))
        let events = try collect(seq)
        XCTAssertEqual(Self.text(events), expected.text)
        XCTAssertEqual(Self.finish(events), .stop)
        XCTAssertFalse(Self.text(events).contains(stop))
    }

    /// `ignoreEOS` (the request field `ignore_eos`): the end-of-sequence token the model chooses is emitted like any
    /// other and decoding goes on to `maxTokens` (finish `length`); without it the same request stops there, after the
    /// same tokens.
    func testIgnoreEOSDecodesPastTheEndOfSequenceToMaxTokens() throws {
        let e = try makeEngine()
        let messages = [ChatMessage(role: "user", content: "What is the capital of France?")]
        let n = 24
        let ended = try e.submit(ServingRequest(model: Self.baseName, input: .chat(messages), maxTokens: n, requestId: "eos"))
        XCTAssertEqual(Self.finish(try collect(ended)), .stop)
        let before = (ended as! EngineSequence).completionTokenIds
        XCTAssertLessThan(before.count, n - 1, "the answer must end early for this test to mean anything")
        let going = try e.submit(ServingRequest(model: Self.baseName, input: .chat(messages), maxTokens: n, requestId: "going",
                                                ignoreEOS: true))
        XCTAssertEqual(Self.finish(try collect(going)), .length)
        let ids = (going as! EngineSequence).completionTokenIds
        XCTAssertEqual(ids.count, n)
        XCTAssertEqual(Array(ids.prefix(before.count)), before)
        XCTAssertTrue(model.eosTokenIds.contains(ids[before.count]), "token \(ids[before.count]) after the answer is not an EOS")
    }

    func testCancelFreesTheSlotAtTheNextStep() throws {
        let e = try makeEngine({ $0.maxRunning = 1 }, start: false)
        let first = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.prompts[0]), maxTokens: 50, requestId: "a"))
        let second = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.prompts[1]), maxTokens: 2, requestId: "b"))
        e.step()
        XCTAssertEqual(e.runningCount, 1)
        XCTAssertEqual(e.queuedCount, 1)
        first.cancel()
        e.step()
        // The cancelled sequence left and the queued one took its place in the same step.
        XCTAssertTrue((first as! EngineSequence).isFinished)
        XCTAssertEqual(e.runningCount, 1)
        XCTAssertEqual(e.queuedCount, 0)
        while !(second as! EngineSequence).isFinished { e.step() }
        // A cancelled stream ends with neither `finished` nor `failed` (its client went away).
        let firstEvents = try collect(first)
        XCTAssertNil(Self.finish(firstEvents))
        XCTAssertFalse(firstEvents.contains { if case .failed = $0 { return true } else { return false } }, "\(firstEvents)")
        XCTAssertLessThan((first as! EngineSequence).completionTokenIds.count, 50)
        let secondEvents = try collect(second)
        XCTAssertEqual(Self.finish(secondEvents), .length)
        XCTAssertEqual(e.runningCount, 0)
    }

    /// Prompts arriving together take at most `prefillRowsPerStep` prompt rows a step (whole chunks, in
    /// admission order, the first chunk always), a decoding stream keeps its row every step, and
    /// each answer is still `lora generate`'s with the same chunk.
    func testAStepTakesAtMostItsPrefillRowsAndAnswersStillEqualGenerate() throws {
        let chunk = 4, budget = 9
        let e = try makeEngine({ $0.prefillChunk = chunk; $0.prefillRowsPerStep = budget }, start: false)
        let n = 3
        let first = try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 60, requestId: "d")) as! EngineSequence
        while first.completionTokenIds.isEmpty { e.step() }
        let prompts = [String(repeating: "Ship 4 red lamps to Oslo. ", count: 3) + "The order is"] + Self.prompts
        let seqs = try prompts.enumerated().map { i, p in
            try e.submit(ServingRequest(model: Self.baseName, input: .text(p), maxTokens: n, requestId: "p\(i)")) as! EngineSequence
        }
        let promptRows = prompts.reduce(0) { $0 + model.tokenizer.encode($1, addSpecialTokens: true).count }
        XCTAssertGreaterThan(promptRows, 4 * budget, "the prompts must need several steps for this test to mean anything")
        var steps = 0
        while seqs.contains(where: { $0.completionTokenIds.isEmpty && !$0.isFinished }) {
            let decoding = ([first] + seqs).filter { !$0.completionTokenIds.isEmpty && !$0.isFinished }
            let before = first.completionTokenIds.count
            let rows = e.step()
            steps += 1
            // One row per decoding stream, and whole chunks of at most `budget` rows (a prompt's last
            // chunk may be shorter than 4, so up to 9 here).
            XCTAssertLessThanOrEqual(rows - decoding.count, budget, "step \(steps)")
            XCTAssertGreaterThan(rows, decoding.count, "step \(steps) prefills a chunk")
            if !first.isFinished { XCTAssertEqual(first.completionTokenIds.count, before + 1, "the decoding stream advances every step") }
        }
        XCTAssertGreaterThanOrEqual(steps, promptRows / budget)
        while seqs.contains(where: { !$0.isFinished }) { e.step() }
        for (i, p) in prompts.enumerated() {
            let expected = try generateExpected(p, reference: nil, maxTokens: n, chunk: chunk)
            XCTAssertEqual(seqs[i].completionTokenIds, expected.tokens, p)
        }
    }

    /// The engine's own clock (`stepTimes`, `lora_step_phase_seconds`): one step per computed forward,
    /// every row counted, the model's phases and the rest charged, and the phases of the steps taken
    /// within an interval sum to at most that interval.
    func testTheStepClockCountsEveryStepRowAndPhase() throws {
        let e = try makeEngine({ _ in }, start: false)
        let n = 5
        let promptTokens = model.tokenizer.encode(Self.prompts[0], addSpecialTokens: true).count
        let before = e.stepTimes
        let start = DispatchTime.now().uptimeNanoseconds
        let seq = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.prompts[0]), maxTokens: n, requestId: "clock")) as! EngineSequence
        var steps = 0
        while !seq.isFinished { e.step(); steps += 1 }
        let wall = DispatchTime.now().uptimeNanoseconds - start
        let d = e.stepTimes.since(before)
        XCTAssertEqual(seq.completionTokenIds.count, n, "the prompt must not end early for the counts below")
        // The prompt (one chunk) chooses the first token; each other token is one decode step.
        XCTAssertEqual(steps, n)
        XCTAssertEqual(d.steps, n)
        XCTAssertEqual(d.rows, promptTokens + n - 1)
        for phase in [StepTimes.Phase.forward, .head, .sample] { XCTAssertGreaterThan(d[phase], 0, "\(phase)") }
        let total = d.nanoseconds.reduce(0, +)
        XCTAssertLessThanOrEqual(total, wall, "phases are disjoint parts of the steps")
        XCTAssertEqual(d.outsideModel + d[.forward] + d[.head], total)
        // A step that computes nothing (nothing queued or running) is not counted.
        e.step()
        XCTAssertEqual(e.stepTimes.since(before).steps, n)
    }

    /// A step hands its text over once every row chose its token (the default) or row by row
    /// (`handOffPerStep` false, the hand-off before): the same events either way, under load.
    func testTheStepsTextHandOffGivesTheSameEventsEitherWay() throws {
        var runs: [[[ServingEvent]]] = []
        for perStep in [true, false] {
            let e = try makeEngine { $0.handOffPerStep = perStep }
            let seqs = try Self.prompts.enumerated().map { i, p in
                try e.submit(ServingRequest(model: Self.baseName, input: .text(p), maxTokens: 6, stop: ["\n\n"], requestId: "h\(i)"))
            }
            runs.append(try seqs.map { try collect($0) })
            e.shutdown()
        }
        XCTAssertEqual(runs[0], runs[1])
        XCTAssertTrue(runs[0].allSatisfy { Self.finish($0) != nil && !Self.text($0).isEmpty }, "\(runs[0])")
    }

    func testAFullQueueRefusesWithRetryAfter() throws {
        let e = try makeEngine({ $0.maxRunning = 1; $0.maxQueue = 2 }, start: false)
        for i in 0..<2 {
            _ = try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "q\(i)"))
        }
        XCTAssertThrowsError(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "q3"))) {
            guard case let .overloaded(after)? = $0 as? ServingError else { return XCTFail("got \($0)") }
            XCTAssertGreaterThanOrEqual(after, 1)
        }
        e.step()   // admits one: a queue place is free again
        XCTAssertNoThrow(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "q4")))
    }

    func testContextAndSamplingErrorsNameTheField() throws {
        let e = try makeEngine(start: false)
        let ctx = e.contextLength
        let ids = model.tokenizer.encode("hi", addSpecialTokens: true)
        assertThrows(ServingError.contextLengthExceeded(field: "max_tokens", promptTokens: ids.count, maxTokens: ctx, context: ctx)) {
            _ = try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: ctx, requestId: "c"))
        }
        assertThrows(ServingError.contextLengthExceeded(field: "max_completion_tokens", promptTokens: ids.count, maxTokens: ctx, context: ctx)) {
            _ = try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: ctx, maxTokensField: "max_completion_tokens",
                                            requestId: "c2"))
        }
        XCTAssertNoThrow(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: ctx - ids.count, requestId: "fits")))
        for (sampling, field) in [(SamplingParameters(temperature: -1), "temperature"), (SamplingParameters(temperature: .nan), "temperature"),
                                  (SamplingParameters(temperature: 1, topK: 0), "top_k"), (SamplingParameters(temperature: 1, topP: 1.5), "top_p")] {
            XCTAssertThrowsError(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, sampling: sampling, requestId: "s"))) {
                guard case let .invalidField(f, _)? = $0 as? ServingError else { return XCTFail("got \($0)") }
                XCTAssertEqual(f, field)
            }
        }
        XCTAssertThrowsError(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: -1, requestId: "m"))) {
            guard case .invalidField("max_tokens", _)? = $0 as? ServingError else { return XCTFail("got \($0)") }
        }
    }

    /// The model's template is parsed once, when the model loads: chat requests render that one tree
    /// (no parse per request) and leave no expression node behind (each request leaked one AST before).
    func testChatRequestsRenderTheModelsOneParsedTemplate() throws {
        let e = try makeEngine(start: false)
        let template = try XCTUnwrap(try model.parsedChatTemplate())
        XCTAssertTrue(try InferenceService(model: model).chatTemplate() === template, "the service hands out the model's parsed template")
        let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi there")]
        let expectedIds = model.tokenizer.encode(try InferenceService(model: model).chatPrompt(messages), addSpecialTokens: false)
        let parses = ChatTemplateStatistics.parses, live = ChatTemplateStatistics.liveExpressions
        for i in 0..<3 {
            let seq = try e.submit(ServingRequest(model: Self.baseName, input: .chat(messages), maxTokens: 1, requestId: "chat\(i)"))
            XCTAssertEqual((seq as! EngineSequence).promptTokenIds, expectedIds)
        }
        XCTAssertEqual(ChatTemplateStatistics.parses, parses, "a chat request parsed the template again")
        XCTAssertEqual(ChatTemplateStatistics.liveExpressions, live, "a chat request left expression nodes alive")
    }

    /// A template that does not parse is found when the model is built; every chat request gets that
    /// error as a 400 on `messages` (line and column), without parsing again; plain prompts still work.
    func testAnUnparseableTemplateFailsChatRequestsWithItsParseError() throws {
        let broken = LanguageModel(model: model.model, tokenizer: model.tokenizer, source: model.source,
                                   chatTemplate: "{% for m in messages %}{{ m.content }")
        guard case .failure? = broken.chatTemplateParse else { return XCTFail("the template should not parse") }
        let e = try ServingEngine(model: broken, baseModelId: Self.baseName, registry: nil, options: .init(),
                                  logger: ServingFixtures.quietLogger)
        let parses = ChatTemplateStatistics.parses
        for i in 0..<2 {
            XCTAssertThrowsError(try e.submit(ServingRequest(model: Self.baseName, input: .chat([ChatMessage(role: "user", content: "hi")]),
                                                             maxTokens: 1, requestId: "b\(i)"))) {
                guard case let .invalidField("messages", message)? = $0 as? ServingError else { return XCTFail("got \($0)") }
                XCTAssertTrue(message.contains("chat template syntax error at line 1, column"), message)
            }
        }
        XCTAssertEqual(ChatTemplateStatistics.parses, parses)
        XCTAssertNoThrow(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "plain")))
        e.shutdown()
    }

    func testUnknownArchivedAndOtherBaseModelsAreNotFound() throws {
        try importDefault("alpha", seed: 11)
        try importDefault("alpha", seed: 13)                 // latest -> 2, so version 1 can be archived
        try service.archive("alpha@1", actor: "tester")
        try addTinyBase(name: "tiny")
        try service.importAdapter(task: "tinytask", directory: try adapterDir(seed: 1), base: "tiny", actor: "tester")
        let e = try makeEngine(start: false)
        func reason(_ model: String) -> String? {
            do { _ = try e.submit(ServingRequest(model: model, input: .text("hi"), maxTokens: 1, requestId: "x")) } catch let ServingError.modelNotFound(m, r) {
                XCTAssertEqual(m, model)
                return r
            } catch { XCTFail("\(model): got \(error)") }
            return nil
        }
        XCTAssertEqual(reason("nosuch"), "no task named `nosuch`")
        XCTAssertEqual(reason("alpha@9"), "task `alpha` has no version 9")
        XCTAssertEqual(reason("alpha@staging"), "task `alpha` has no alias `staging`")
        XCTAssertEqual(reason("alpha@1"), "version alpha@1 is archived")
        XCTAssertEqual(reason("tinytask"), "version tinytask@1 was trained on base model `tiny`, not on `smollm2`")
        XCTAssertNotNil(reason("Not A Model!"))
        XCTAssertNoThrow(try e.submit(ServingRequest(model: "alpha", input: .text("hi"), maxTokens: 1, requestId: "ok")))
        XCTAssertNoThrow(try e.submit(ServingRequest(model: "alpha@2", input: .text("hi"), maxTokens: 1, requestId: "ok2")))

        // Listed: the base, then tasks servable on it (not the other base's).
        let listed = try e.listModels()
        XCTAssertEqual(listed.map(\.id), [Self.baseName, "alpha"])
        XCTAssertEqual(listed.map(\.parent), [nil, Self.baseName])
    }

    func testDrainFinishesRunningSequencesThenRefuses() throws {
        let e = try makeEngine()
        let seq = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.prompts[0]), maxTokens: 3, requestId: "d"))
        e.drain(timeout: 120)
        let events = try collect(seq)
        XCTAssertEqual(Self.finish(events), .length)
        XCTAssertThrowsError(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "late"))) {
            guard case .unavailable? = $0 as? ServingError else { return XCTFail("got \($0)") }
        }
        XCTAssertFalse(e.ready())
    }
}
