import Foundation
import Logging
import Model
import Registry
import Service
import ServiceTestSupport
import TestSupport
import Training
import XCTest

/// The default model, loaded once per test process, and adapters made for it.
enum ServingFixtures {
    static let defaultModel: Result<LanguageModel, Error> = Result {
        try LanguageModel.load(path: try TestPaths.requireDefaultModel().path)
    }

    static func model() throws -> LanguageModel { try defaultModel.get() }

    /// A LoRA adapter over `config` with PEFT's A and a non-zero B (so it changes the output),
    /// deterministic in `seed`. `scale` sets B's magnitude.
    static func adapter(seed: UInt64, config: LlamaConfig, rank: Int = 4, scale: Float = 0.02,
                        targets: [LinearModule] = LinearModule.allCases) -> LoRAAdapter {
        let a = LoRAAdapter(config: LoRAConfig(rank: rank, alpha: Float(2 * rank), dropout: 0, targets: targets), base: config)
        a.initialize(seed: seed)
        var rng = SeededGenerator(seed: seed &+ 0x9E37)
        for p in a.pairs {
            for i in 0..<p.bCount { a.parameters[p.bOffset + i] = Float(rng.nextUnitFloat() * 2 - 1) * scale }
        }
        return a
    }

    /// Writes `adapter(seed:...)` as a PEFT directory under `dir`.
    static func writeAdapter(seed: UInt64, config: LlamaConfig, to dir: URL, rank: Int = 4, scale: Float = 0.02) throws -> URL {
        let out = dir.appendingPathComponent("adapter-\(seed)-\(UUID().uuidString.prefix(8))")
        try PEFTAdapter.save(adapter(seed: seed, config: config, rank: rank, scale: scale),
                             base: .init(name: "smollm2", sha256: nil), to: out)
        return out
    }

    static var quietLogger: Logger {
        var l = Logger(label: "lora.serving.test")
        l.logLevel = .warning
        return l
    }
}

/// A registry with the default model registered as base `smollm2`, and an engine serving it.
class EngineTestCase: RegistryTestCase {
    static let baseName = "smollm2"
    var model: LanguageModel!
    var engine: ServingEngine?

    override func setUpWithError() throws {
        try super.setUpWithError()
        model = try ServingFixtures.model()
        try service.addBaseModel(name: Self.baseName, source: try TestPaths.requireDefaultModel(), actor: "tester")
    }

    override func tearDown() {
        engine?.shutdown()
        engine = nil
        super.tearDown()
    }

    func makeEngine(_ configure: (inout ServingEngine.Options) -> Void = { _ in }, start: Bool = true) throws -> ServingEngine {
        var o = ServingEngine.Options()
        configure(&o)
        let e = try ServingEngine(model: model, baseModelId: Self.baseName, registry: service, options: o,
                                  logger: ServingFixtures.quietLogger)
        engine = e
        if start { e.start() }
        return e
    }

    /// Registers an adapter for the default model as the task's next version.
    @discardableResult
    func importDefault(_ task: String, seed: UInt64, scale: Float = 0.02) throws -> VersionRecord {
        let dir = try ServingFixtures.writeAdapter(seed: seed, config: model.model.config, to: scratch, scale: scale)
        return try service.importAdapter(task: task, directory: dir, base: Self.baseName, actor: "tester")
    }

    /// Collects every event of a sequence until its stream ends.
    func collect(_ seq: ServingSequence, timeout: Double = 120) throws -> [ServingEvent] {
        let box = EventBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            for await e in seq.events { box.append(e) }
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else {
            XCTFail("the sequence did not finish within \(timeout) s")
            return box.events
        }
        return box.events
    }

    static func text(_ events: [ServingEvent]) -> String {
        events.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined()
    }

    static func finish(_ events: [ServingEvent]) -> FinishReason? {
        for e in events { if case let .finished(r, _, _) = e { return r } }
        return nil
    }
}

final class EventBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _events: [ServingEvent] = []
    func append(_ e: ServingEvent) { lock.lock(); _events.append(e); lock.unlock() }
    var events: [ServingEvent] { lock.lock(); defer { lock.unlock() }; return _events }
}

/// Polls `condition` until it holds or `deadline` seconds pass (a bounded wait for something another
/// thread or process does, never a fixed sleep standing in for it).
func waitUntil(_ deadline: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let end = Date().addingTimeInterval(deadline)
    while Date() < end {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}
