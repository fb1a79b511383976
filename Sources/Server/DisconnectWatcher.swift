import Foundation
import NIOCore

/// Notices a client that went away (its end of the connection closed) while a request is still
/// being answered, so the request's sequences are cancelled at once instead of running to the end.
/// One per connection, in the HTTP pipeline; keep-alive connections are not disturbed.
final class DisconnectWatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny

    private let lock = NSLock()
    private var gone = false
    private var next: UInt64 = 0
    private var callbacks: [UInt64: @Sendable () -> Void] = [:]

    /// Runs `onDisconnect` once if the client goes away (at once if it already has); the token
    /// unregisters it when the request is done.
    func register(_ onDisconnect: @escaping @Sendable () -> Void) -> UInt64 {
        lock.lock()
        if gone { lock.unlock(); onDisconnect(); return 0 }
        next += 1
        let token = next
        callbacks[token] = onDisconnect
        lock.unlock()
        return token
    }

    func unregister(_ token: UInt64) {
        lock.lock(); callbacks[token] = nil; lock.unlock()
    }

    private func disconnected() {
        lock.lock()
        gone = true
        let pending = Array(callbacks.values)
        callbacks = [:]
        lock.unlock()
        pending.forEach { $0() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { disconnected() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        disconnected()
        context.fireChannelInactive()
    }
}

extension ServerContext {
    /// Runs `body`; if the client goes away meanwhile, `onDisconnect` runs (once).
    func onDisconnect<T>(_ onDisconnect: @escaping @Sendable () -> Void, _ body: () async throws -> T) async throws -> T {
        guard let channel, let watcher = try? await channel.pipeline.handler(type: DisconnectWatcher.self).get() else {
            return try await body()
        }
        let token = watcher.register(onDisconnect)
        defer { watcher.unregister(token) }
        return try await body()
    }
}
