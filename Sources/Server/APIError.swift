import Diagnostics
import Foundation
import HTTPTypes
import Hummingbird
import Service

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with its
/// HTTP status. Domain errors (`ServingError`) become one here, and only here.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    /// Seconds for `Retry-After` (429, 503).
    public var retryAfter: Int?

    public init(status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil,
                retryAfter: Int? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param; self.code = code
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(message)" }

    public static func badRequest(_ message: String, param: String?, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// A request argument this server does not implement (or not with this value).
    public static func unsupported(_ field: String, _ value: JSON, _ why: String) -> APIError {
        .badRequest("`\(field)` is not supported by this server (got \(value.brief)): \(why)", param: field, code: "unsupported_parameter")
    }

    /// A request argument of the wrong type or out of range.
    public static func invalid(_ field: String, _ value: JSON, expected: String) -> APIError {
        .badRequest("Invalid value for `\(field)`: expected \(expected), got \(value.brief)", param: field, code: "invalid_value")
    }

    public static func missing(_ field: String, expected: String) -> APIError {
        .badRequest("Missing required parameter: `\(field)` (\(expected))", param: field, code: "missing_required_parameter")
    }

    /// The body OpenAI's clients parse.
    public var body: JSON {
        .object([("error", .object([
            ("message", .string(message)), ("type", .string(type)), ("param", JSON(param)), ("code", JSON(code)),
        ]))])
    }

    public var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let after = retryAfter { headers[.retryAfter] = String(after) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body.serialized())))
    }
}

extension APIError {
    /// The HTTP status and OpenAI error for a serving error.
    public init(_ error: ServingError) {
        switch error {
        case .modelNotFound:
            self.init(status: .notFound, message: error.description, type: "invalid_request_error", param: "model",
                      code: "model_not_found")
        case let .invalidField(field, _):
            self.init(status: .badRequest, message: error.description, type: "invalid_request_error", param: field,
                      code: "invalid_value")
        case let .contextLengthExceeded(field, _, _, _):
            self.init(status: .badRequest, message: error.description, type: "invalid_request_error", param: field,
                      code: "context_length_exceeded")
        case let .overloaded(after):
            self.init(status: .tooManyRequests, message: error.description, type: "rate_limit_error", code: "rate_limit_exceeded",
                      retryAfter: max(1, after))
        case .unavailable:
            self.init(status: .serviceUnavailable, message: error.description, type: "server_error", code: "service_unavailable",
                      retryAfter: 1)
        case .internalError:
            self.init(status: .internalServerError, message: error.description, type: "server_error", code: "internal_error")
        }
    }

    /// Any error a handler meets, as the response the client gets.
    public static func from(_ error: Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as ServingError: return APIError(e)
        case is ClientGone:
            return APIError(status: .init(code: 499, reasonPhrase: "Client Closed Request"),
                            message: "the client closed the connection", type: "invalid_request_error")
        case let e as HTTPError:
            return APIError(status: e.status, message: e.body ?? e.status.reasonPhrase, type: "invalid_request_error")
        default:
            // An error no route expected: its words, never Swift's or Foundation's dump of it.
            return APIError(status: .internalServerError, message: "internal error: \(ErrorText.describe(error))", type: "server_error",
                            code: "internal_error")
        }
    }
}
