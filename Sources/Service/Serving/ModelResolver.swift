import Foundation
import Logging
import Registry

/// A request's `model` to what answers it: the base model's id, or `TASK`, `TASK@N`, `TASK@ALIAS`
/// resolved to a version and its artifact sha256 by one registry query.
///
/// Resolutions are remembered for at most `recheckSeconds` and forgotten at once when the registry
/// announces an alias move or an archive of their task (`AliasListener`), so a promote or rollback
/// anywhere is in force for the next request within about `recheckSeconds` even if a notification
/// is lost, and immediately when it is not.
public final class ModelResolver: @unchecked Sendable {
    public let baseModelId: String
    public let registry: RegistryService?
    public let recheckSeconds: Double
    private let lock = NSLock()
    private var remembered: [String: (model: ServedModel, task: String, at: UInt64)] = [:]
    /// Registry queries made (one per resolution that was not remembered).
    public private(set) var queries = 0

    public init(baseModelId: String, registry: RegistryService?, recheckSeconds: Double) {
        self.baseModelId = baseModelId
        self.registry = registry
        self.recheckSeconds = recheckSeconds
    }

    /// What answers `model`, or `ServingError.modelNotFound` saying why nothing does.
    public func resolve(_ model: String) throws -> ServedModel {
        if model == baseModelId { return ServedModel(id: baseModelId) }
        let ref: AdapterReference
        do { ref = try AdapterReference.parse(model) } catch {
            throw ServingError.modelNotFound(model: model, reason: "it is neither the base model `\(baseModelId)` nor an adapter reference (TASK, TASK@N, TASK@ALIAS)")
        }
        guard let registry else {
            throw ServingError.modelNotFound(model: model, reason: "no adapter registry is configured; this server answers only as `\(baseModelId)`")
        }
        let now = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        if let r = remembered[model], Double(now - r.at) / 1e9 < recheckSeconds {
            lock.unlock()
            return r.model
        }
        queries += 1
        lock.unlock()
        let resolution: ServingResolution
        do {
            resolution = try registry.pool.withConnection { try registry.store.resolveForServing(ref, on: $0) }
        } catch {
            throw ServingError.unavailable("the adapter registry did not answer: \(error)")
        }
        let served = try Self.served(resolution, model: model, baseModelId: baseModelId)
        lock.lock()
        remembered[model] = (served, ref.task, now)
        lock.unlock()
        return served
    }

    static func served(_ r: ServingResolution, model: String, baseModelId: String) throws -> ServedModel {
        let task = r.reference.task
        switch r.outcome {
        case .unknownTask:
            throw ServingError.modelNotFound(model: model, reason: "no task named `\(task)`")
        case .unknownVersion(let n):
            throw ServingError.modelNotFound(model: model, reason: "task `\(task)` has no version \(n)")
        case .unknownAlias(let a):
            if case .defaultAlias = r.reference.selector {
                throw ServingError.modelNotFound(model: model, reason: "task `\(task)` has no live version (no `production` nor `latest` alias)")
            }
            throw ServingError.modelNotFound(model: model, reason: "task `\(task)` has no alias `\(a)`")
        case let .version(n, sha, _, base, archived):
            if archived {
                throw ServingError.modelNotFound(model: model, reason: "version \(task)@\(n) is archived")
            }
            if base != baseModelId {
                throw ServingError.modelNotFound(model: model, reason: "version \(task)@\(n) was trained on base model `\(base)`, not on `\(baseModelId)`")
            }
            return ServedModel(id: "\(task)@\(n)", task: task, version: n, adapterSHA256: sha)
        }
    }

    /// Forgets what was remembered for `task` (nil: for every task).
    public func invalidate(task: String?) {
        lock.lock()
        defer { lock.unlock() }
        guard let task else { remembered.removeAll(); return }
        remembered = remembered.filter { $0.value.task != task }
    }
}

/// LISTENs on the registry's alias-move channel on a connection of its own and tells the resolver;
/// reconnects after a lost connection (the resolver's re-check covers what was missed meanwhile).
final class AliasListener: @unchecked Sendable {
    private let conninfo: String
    private let resolver: ModelResolver
    private let logger: Logger
    private let pollSeconds: Double
    private let lock = NSLock()
    private var stopping = false
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)
    /// Signalled once the first LISTEN is in place (tests wait for it instead of sleeping).
    let listening = DispatchSemaphore(value: 0)

    init(conninfo: String, resolver: ModelResolver, pollSeconds: Double, logger: Logger) {
        self.conninfo = conninfo; self.resolver = resolver; self.pollSeconds = pollSeconds; self.logger = logger
    }

    func start() {
        let t = Thread { [self] in run(); done.signal() }
        t.name = "lora-alias-listener"
        thread = t
        t.start()
    }

    func stop() {
        lock.lock()
        let wasRunning = thread != nil && !stopping
        stopping = true
        lock.unlock()
        if wasRunning { done.wait() }
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func run() {
        var announced = false
        while !isStopping {
            do {
                let conn = try Connection(conninfo)
                try conn.listen(aliasMovedChannel)
                // Whatever moved while we were not listening.
                resolver.invalidate(task: nil)
                if !announced { announced = true; listening.signal() }
                while !isStopping {
                    if let n = try conn.waitForNotification(timeout: pollSeconds) {
                        resolver.invalidate(task: n.payload.isEmpty ? nil : n.payload)
                    }
                }
            } catch {
                logger.warning("alias listener: \(error); reconnecting")
                resolver.invalidate(task: nil)
                // Back off for one poll period before reconnecting.
                Thread.sleep(forTimeInterval: pollSeconds)
            }
        }
    }
}
