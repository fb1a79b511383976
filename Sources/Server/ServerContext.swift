import Foundation
import Hummingbird
import Logging
import NIOCore

/// The per-request context: Hummingbird's core storage plus the request id and what the metrics
/// label the request with.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's `X-Request-Id` (when usable) or a new one; echoed in the response and logged as `request_id`.
    public var requestId: String = ""
    /// Set by handlers once known (the served model, `TASK@N`), read by the metrics middleware.
    let labels = RequestLabels()
    /// The connection, watched for a client that goes away.
    let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Labels a handler learns while it runs (the served model), for the middleware that counts requests.
final class RequestLabels: @unchecked Sendable {
    private let lock = NSLock()
    private var _model: String?
    var model: String? {
        get { lock.lock(); defer { lock.unlock() }; return _model }
        set { lock.lock(); _model = newValue; lock.unlock() }
    }
}
