import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// Takes the client's `X-Request-Id` when it is a plain token of at most 128 characters, else makes
/// one; puts it in the logger's metadata (`request_id`) and echoes it on every response.
struct RequestIdMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    static let header = HTTPField.Name("X-Request-Id")!
    static let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")

    static func usable(_ id: String?) -> String? {
        guard let id, !id.isEmpty, id.count <= 128, id.allSatisfy(allowed.contains) else { return nil }
        return id
    }

    static func generate() -> String {
        (0..<32).map { _ in String(UInt8.random(in: 0..<16), radix: 16) }.joined()
    }

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        var context = context
        let id = Self.usable(request.headers[Self.header]) ?? Self.generate()
        context.requestId = id
        context.logger[metadataKey: "request_id"] = .string(id)
        var response = try await next(request, context)
        response.headers[Self.header] = id
        return response
    }
}

/// Turns every error a handler throws into OpenAI's error shape with its status (404 for unknown
/// routes too), so clients always get `{"error": {...}}`.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            var api = APIError.from(error)
            if api.status == .notFound && context.endpointPath == "NotFound" {
                api = APIError(status: .notFound, message: "No route for \(request.method) \(request.uri.path)",
                               type: "invalid_request_error", code: "unknown_url")
            }
            if api.status.code >= 500 {
                context.logger.error("\(request.method) \(request.uri.path) failed: \(error)")
            }
            return api.response
        }
    }
}

/// Refuses a request whose header block is larger than the limit with 431 and a message naming the
/// size. (Beyond the HTTP parser's own, larger, hard limit `HeaderOverflowResponder` answers 431 and
/// closes the connection.)
struct HeaderLimitMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let maxBytes: Int

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        // Each field as sent on the wire: "name: value\r\n".
        let size = request.headers.reduce(0) { $0 + $1.name.rawName.utf8.count + $1.value.utf8.count + 4 }
        guard size <= maxBytes else {
            throw APIError(status: .requestHeaderFieldsTooLarge,
                           message: "Request headers are \(size) bytes; the limit is \(maxBytes) bytes",
                           type: "invalid_request_error", code: "request_header_fields_too_large")
        }
        return try await next(request, context)
    }
}

/// Counts requests by route, served model and status (`lora_http_requests_total`), times them to
/// the response head (`lora_http_request_duration_seconds`), and logs one line per request.
struct HTTPMetricsMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let factory: MetricsFactory

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let response = try await next(request, context)
        let nanos = DispatchTime.now().uptimeNanoseconds - start
        let route = context.endpointPath ?? "NotFound"
        let model = context.labels.model ?? "none"
        let status = String(response.status.code)
        Counter(label: "lora_http_requests_total",
                dimensions: [("route", route), ("model", model), ("status", status)], factory: factory).increment()
        Metrics.Timer(label: "lora_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
            .recordNanoseconds(Int64(nanos))
        context.logger.info("\(request.method) \(request.uri.path) \(status)",
                            metadata: ["route": .string(route), "model": .string(model), "ms": .stringConvertible(nanos / 1_000_000)])
        return response
    }
}
