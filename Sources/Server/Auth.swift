import Foundation
import HTTPTypes
import Hummingbird
import Registry
import Service

/// Who is calling, for the duration of a request: the API key's name and role (nil when the
/// server enforces no keys).
public enum RequestIdentity {
    @TaskLocal public static var key: ActiveAPIKey?

    /// Recorded as the actor of what the request changes.
    static var actor: String { key.map { "api-key:\($0.name)" } ?? "http" }
}

/// What a route needs: nothing (health, metrics, the OpenAPI document) or at least a role.
enum RouteAccess: Equatable {
    case open
    case role(APIKeyRecord.Role)

    /// The role table: inference for generation and models; trainer for files, jobs,
    /// registry reads and adapter downloads; admin for promote, rollback, import and archive.
    static func of(method: HTTPRequest.Method, path: String) -> RouteAccess {
        guard path == "/v1" || path.hasPrefix("/v1/") else { return .open }
        if path == "/v1/completions" || path == "/v1/chat/completions" || path == "/v1/models" || path.hasPrefix("/v1/models/") {
            return .role(.inference)
        }
        if path.hasPrefix("/v1/tasks/"), method == .post {
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)  // v1 tasks TASK ...
            if parts.count == 4, ["promote", "rollback", "versions"].contains(parts[3]) { return .role(.admin) }
            if parts.count == 6, parts[3] == "versions", parts[5] == "archive" { return .role(.admin) }
        }
        return .role(.trainer)
    }
}

/// How the server treats requests without a key.
public struct AuthPolicy: Sendable {
    /// The keys in force, followed live.
    public let ring: APIKeyRing
    /// True when the server listens beyond loopback without `--allow-unauthenticated`: with no key
    /// in force, /v1 requests are refused instead of served openly.
    public let requireKeys: Bool

    public init(ring: APIKeyRing, requireKeys: Bool) {
        self.ring = ring
        self.requireKeys = requireKeys
    }

    /// True for addresses only this machine reaches.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// Once any key is in force, every /v1 request needs `Authorization: Bearer KEY`: 401 without one
/// or with one that is unknown or revoked, 403 when the key's role may not use the route. With no
/// key in force the header is ignored. The presented key is never logged or echoed.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let policy: AuthPolicy

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        guard case let .role(needed) = RouteAccess.of(method: request.method, path: request.uri.path) else {
            return try await next(request, context)
        }
        guard policy.ring.enforcing else {
            if policy.requireKeys {
                throw APIError(status: .unauthorized, message: "This server listens beyond loopback and requires API keys, but no key is "
                    + "in force: create one with `lora keys create NAME --role ROLE`", type: "invalid_request_error", code: "invalid_api_key")
            }
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization], header.count > 7,
              header.prefix(7).lowercased() == "bearer " else {
            throw APIError(status: .unauthorized, message: "You didn't provide an API key: send `Authorization: Bearer KEY`",
                           type: "invalid_request_error", code: "invalid_api_key")
        }
        let presented = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard let key = policy.ring.authenticate(presented) else {
            throw APIError(status: .unauthorized, message: "Incorrect API key provided (unknown or revoked)",
                           type: "invalid_request_error", code: "invalid_api_key")
        }
        guard key.role >= needed else {
            throw APIError(status: .forbidden, message: "API key '\(key.name)' has role \(key.role.rawValue); "
                + "\(request.method) \(request.uri.path) needs \(needed.rawValue) or above",
                           type: "permission_error", code: "insufficient_permissions")
        }
        var context = context
        context.logger[metadataKey: "api_key"] = .string(key.name)
        return try await RequestIdentity.$key.withValue(key) { try await next(request, context) }
    }
}
