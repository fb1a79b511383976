import Foundation
import Model
import Registry
import Service
import ServiceTestSupport
import TestSupport
import Training
import XCTest

/// Speculation in the serving engine: per request (`speculate`, `lookup_ngram`) or by the engine's
/// default, each speculating sequence's output is `lora generate`'s without speculation, token for
/// token, while it shares steps with plain decoders, other adapters and prefilling prompts.
final class SpeculativeServingTests: EngineTestCase {
    static let copyPrompt = SpeculativeDecodingTests.copyPrompt

    func plainExpected(_ prompt: String, reference: String?, maxTokens: Int, sampling: SamplingParameters = .greedy,
                       stop: [String] = [], chunk: Int) throws -> GenerationResult {
        var options = InferenceService.GenerateOptions()
        options.maxTokens = maxTokens
        options.sampling = sampling
        options.stop = stop
        options.prefillChunk = chunk
        var adapters = AdapterSet.none
        if let reference {
            adapters = AdapterSet([try TrainingService.loadAdapter(try service.resolve(reference).directory, for: model) { _ in }])
        }
        return try InferenceService(model: model).generate(prompt: prompt, options: options, adapters: adapters)
    }

    func testSpeculatingRequestsEqualPlainGenerateBesidePlainOnes() throws {
        try importDefault("alpha", seed: 51, scale: 0.05)
        let chunk = 8
        let e = try makeEngine { $0.prefillChunk = chunk }
        let long = String(repeating: "Ship 4 red lamps to Oslo. ", count: 4) + "The order is"
        let seeded = SamplingParameters(temperature: 0.8, seed: 5)
        struct R { var model: String; var prompt: String; var n: Int; var sampling = SamplingParameters.greedy
                   var stop: [String] = []; var speculate: Int?; var ngram: Int? }
        let reqs = [
            R(model: "alpha", prompt: Self.copyPrompt, n: 20, speculate: 4),
            R(model: Self.baseName, prompt: Self.copyPrompt, n: 18, stop: ["Oslo"], speculate: 6, ngram: 2),
            R(model: Self.baseName, prompt: "The capital of France is", n: 10),              // plain neighbour
            R(model: "alpha", prompt: long, n: 8, speculate: 0),                              // prefilling neighbour
            R(model: "alpha", prompt: Self.copyPrompt, n: 12, sampling: seeded, speculate: 3),
        ]
        let expected = try reqs.map {
            try plainExpected($0.prompt, reference: $0.model == Self.baseName ? nil : $0.model, maxTokens: $0.n,
                              sampling: $0.sampling, stop: $0.stop, chunk: chunk)
        }
        let seqs = try reqs.enumerated().map { i, r in
            try e.submit(ServingRequest(model: r.model, input: .text(r.prompt), maxTokens: r.n, sampling: r.sampling,
                                        stop: r.stop, requestId: "s\(i)", speculate: r.speculate, lookupNgram: r.ngram))
        }
        let events = try seqs.map { try collect($0) }
        for (i, exp) in expected.enumerated() {
            let s = seqs[i] as! EngineSequence
            XCTAssertEqual(s.completionTokenIds, exp.tokens, "request \(i)")
            XCTAssertEqual(Self.text(events[i]), exp.text, "request \(i)")
            XCTAssertEqual(Self.finish(events[i]), exp.finishReason, "request \(i)")
            if (reqs[i].speculate ?? 0) == 0 { XCTAssertEqual(s.draftedTokens, 0, "request \(i) did not ask to speculate") }
        }
        let spec = seqs.map { $0 as! EngineSequence }
        XCTAssertGreaterThan(spec[0].acceptedTokens, 0, "the copying request accepted no draft")
        XCTAssertGreaterThan(spec[4].draftedTokens, 0, "the sampling request drafted nothing")
        XCTAssertEqual(Self.finish(events[1]), .stop, "the stop string ends request 1")
        XCTAssertEqual(e.runningCount, 0)
    }

    func testTheEngineDefaultAppliesUnlessARequestSaysOtherwise() throws {
        let e = try makeEngine { $0.speculate = 4 }
        let n = 12
        let expected = try plainExpected(Self.copyPrompt, reference: nil, maxTokens: n, chunk: LlamaModel.defaultPrefillChunk)
        let byDefault = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.copyPrompt), maxTokens: n, requestId: "d"))
        let off = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.copyPrompt), maxTokens: n, requestId: "o", speculate: 0))
        _ = try collect(byDefault); _ = try collect(off)
        let d = byDefault as! EngineSequence, o = off as! EngineSequence
        XCTAssertEqual(d.completionTokenIds, expected.tokens)
        XCTAssertEqual(o.completionTokenIds, expected.tokens)
        XCTAssertGreaterThan(d.draftedTokens, 0)
        XCTAssertEqual(o.draftedTokens, 0)
    }

    func testOutOfRangeSettingsNameTheField() throws {
        let e = try makeEngine(start: false)
        for (k, n, field) in [(PromptLookup.maxDraftTokens + 1, nil, "speculate"), (-1, nil, "speculate"),
                              (4, 0, "lookup_ngram"), (4, PromptLookup.maxNgram + 1, "lookup_ngram")] as [(Int, Int?, String)] {
            XCTAssertThrowsError(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "x",
                                                             speculate: k, lookupNgram: n))) {
                guard case let .invalidField(f, message)? = $0 as? ServingError else { return XCTFail("got \($0)") }
                XCTAssertEqual(f, field)
                XCTAssertTrue(message.contains("got \(field == "speculate" ? k : n!)"), message)
            }
        }
        XCTAssertEqual(e.queuedCount, 0)
        XCTAssertThrowsError(try makeEngine({ $0.speculate = -2 }, start: false)) {
            guard case .invalidField("speculate", _)? = $0 as? ServingError else { return XCTFail("got \($0)") }
        }
    }

    /// A verification row's LM head runs only once every draft before it stood (`PromptLookup.logitsWindow`):
    /// with rejected drafts, fewer rows get logits than the step fed, while the output stays plain
    /// decoding's; a plain request's every row gets its logits.
    func testRowsPastARejectedDraftGetNoLMHead() throws {
        let e = try makeEngine()
        let n = 24
        let expected = try plainExpected(Self.copyPrompt, reference: nil, maxTokens: n, chunk: LlamaModel.defaultPrefillChunk)
        let spec = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.copyPrompt), maxTokens: n, requestId: "h",
                                               speculate: 8, lookupMinNgram: 1))
        let plain = try e.submit(ServingRequest(model: Self.baseName, input: .text(Self.copyPrompt), maxTokens: n, requestId: "p"))
        _ = try collect(spec); _ = try collect(plain)
        let s = spec as! EngineSequence, p = plain as! EngineSequence
        XCTAssertEqual(s.completionTokenIds, expected.tokens)
        XCTAssertEqual(p.completionTokenIds, expected.tokens)
        XCTAssertGreaterThan(s.acceptedTokens, 0, "no draft stood")
        XCTAssertGreaterThan(s.draftedTokens, s.acceptedTokens, "no draft was rejected")
        XCTAssertLessThan(s.headRows, s.fedRows, "every verification row got its LM head")
        XCTAssertGreaterThanOrEqual(s.headRows, s.completionTokenIds.count, "a token was chosen without its row's logits")
        XCTAssertEqual(p.headRows, p.fedRows)
        // One row a token (the prompt's last, then each decode row), and the row that chose an EOS.
        XCTAssertEqual(p.fedRows, p.completionTokenIds.count + (expected.finishReason == .stop ? 1 : 0))
    }

    /// `lookup_min_ngram` above the request's (or the engine's) `lookup_ngram`, or below 1, is a field error naming it.
    func testAMinimumNgramOutOfRangeNamesItsField() throws {
        let e = try makeEngine(start: false)
        for (n, least) in [(2, 3), (nil, 4), (3, 0)] as [(Int?, Int)] {
            XCTAssertThrowsError(try e.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "m",
                                                             speculate: 2, lookupNgram: n, lookupMinNgram: least))) {
                guard case let .invalidField(f, message)? = $0 as? ServingError else { return XCTFail("got \($0)") }
                XCTAssertEqual(f, "lookup_min_ngram")
                XCTAssertTrue(message.contains("got \(least)") && message.contains("1...\(n ?? PromptLookup.defaultNgram)"), message)
            }
        }
        // The engine's own minimum yields to a request's smaller lookup_ngram instead.
        let lowered = try makeEngine({ $0.lookupMinNgram = 3 }, start: false)
        XCTAssertNoThrow(try lowered.submit(ServingRequest(model: Self.baseName, input: .text("hi"), maxTokens: 1, requestId: "l",
                                                           speculate: 2, lookupNgram: 1)))
        XCTAssertThrowsError(try makeEngine({ $0.lookupMinNgram = 4 }, start: false)) {
            guard case .invalidField("lookupMinNgram", _)? = $0 as? ServingError else { return XCTFail("got \($0)") }
        }
    }
}
