import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import Logging

import ServiceLifecycle
import Service
import UnixSignals

/// Size limits on what a client may send.
public struct ServerLimits: Sendable {
    /// Request bodies beyond this are answered 413.
    public var maxBodyBytes = 4 << 20
    /// Header blocks beyond this are answered 431; beyond `hardHeaderBytes` the HTTP parser stops
    /// reading, and the connection is answered 431 (`HeaderOverflowResponder`) and closed.
    public var maxHeaderBytes = 16 << 10
    public var hardHeaderBytes: Int { max(64 << 10, 2 * maxHeaderBytes) }
    public init() {}
}

/// Whether the server is shutting down (new generation requests get 503, `/readyz` says draining).
final class ServerState: @unchecked Sendable {
    private let lock = NSLock()
    private var _draining = false
    var draining: Bool {
        get { lock.lock(); defer { lock.unlock() }; return _draining }
        set { lock.lock(); _draining = newValue; lock.unlock() }
    }
}

/// The HTTP server over a `ServingBackend`: OpenAI-compatible routes, `/metrics`, `/healthz`, `/readyz`.
public struct OpenAIServer: Sendable {
    public var host: String
    public var port: Int
    public var limits: ServerLimits
    public let backend: ServingBackend
    public let metrics: ServerMetrics
    public var logger: Logger
    /// The fine-tuning, files, registry routes and API keys (issue 14); nil serves inference only.
    public var api: APIServices?
    let state = ServerState()

    public init(backend: ServingBackend, host: String = "127.0.0.1", port: Int = 8080, limits: ServerLimits = .init(),
                metrics: ServerMetrics = .init(), logger: Logger = Logger(label: "lora.server")) {
        self.backend = backend; self.host = host; self.port = port; self.limits = limits
        self.metrics = metrics; self.logger = logger
    }

    /// The router with every route and middleware: request id outermost (so every response echoes
    /// it), then metrics and logging, then errors in OpenAI's shape, then the header limit.
    public func router() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: RequestIdMiddleware())
        router.add(middleware: HTTPMetricsMiddleware(factory: metrics.factory))
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: HeaderLimitMiddleware(maxBytes: limits.maxHeaderBytes))
        if let auth = api?.auth { router.add(middleware: AuthMiddleware(policy: auth)) }
        Routes(backend: backend, limits: limits, metrics: metrics, state: state).register(on: router)
        APIRoutes(api: api, limits: limits).register(on: router)
        return router
    }

    /// The Hummingbird application; `onListening` gets the bound address (port 0 picks a free port).
    public func application(onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in })
        -> some ApplicationProtocol {
        let decoder = HTTP1Channel.Configuration.DecoderConfiguration(
            maxHeaderFieldSize: limits.hardHeaderBytes, maxHeaderListSize: limits.hardHeaderBytes, maxHeaderFieldCount: 1000)
        return Application(
            router: router(),
            server: .http1(configuration: .init(additionalChannelHandlers: [HeaderOverflowResponder(hardLimit: limits.hardHeaderBytes), DisconnectWatcher()], idleTimeout: .seconds(300),
                                                httpDecoderConfiguration: decoder)),
            configuration: .init(address: .hostname(host, port: port), serverName: "lora"),
            onServerRunning: { channel in
                await onListening(host, channel.localAddress?.port ?? port)
            },
            logger: logger)
    }

    /// Serves until SIGTERM or SIGINT, then drains: new generation requests get 503 at once, the
    /// listener closes, `onShutdown` runs (the engine finishes its running sequences, job workers
    /// checkpoint) while in-flight responses finish, and this returns once both are done.
    public func run(onListening: @escaping @Sendable (String, Int) async -> Void,
                    onShutdown: @escaping @Sendable () async -> Void) async throws {
        // Trap the signals before the listener exists, so a signal never kills a half-started server.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let group = ServiceGroup(configuration: .init(services: [application(onListening: onListening)], logger: logger))
        let drain = Task { [state, logger] in
            var it = signals.makeAsyncIterator()
            guard let signal = await it.next() else { return }
            logger.info("\(signal): draining")
            state.draining = true
            await group.triggerGracefulShutdown()
            await onShutdown()
        }
        do {
            // Returns once every connection has finished its response after the listener closed.
            try await group.run()
        } catch {
            drain.cancel()
            throw error
        }
        if !state.draining { drain.cancel() }
        await drain.value
    }
}
