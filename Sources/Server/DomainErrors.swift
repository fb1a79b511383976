import Foundation
import HTTPTypes
import Hummingbird
import Model
import Registry
import Service
import Training

extension APIError {
    /// The registry's, the job queue's and the data validator's errors as HTTP statuses: unknown
    /// things 404, state conflicts 409, bad input 400 (naming `param` when the caller knows it).
    static func domain(_ error: Error, param: String? = nil) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as RegistryError:
            let message = e.description
            switch e {
            case let .notFound(kind, _):
                let code = kind == "base model" ? "model_not_found" : "not_found"
                return APIError(status: .notFound, message: message, type: "invalid_request_error",
                                param: kind == "base model" ? "model" : param, code: code)
            case .alreadyExists, .conflict, .nothingToRollBack, .versionArchived, .versionHasAliases, .rollbackTargetArchived:
                return APIError(status: .conflict, message: message, type: "invalid_request_error", param: param, code: "conflict")
            case .invalidName, .invalidReference, .reservedAlias, .invalidArtifact:
                return .badRequest(message, param: param, code: "invalid_value")
            case .artifactCorrupt, .io:
                return APIError(status: .internalServerError, message: message, type: "server_error", code: "internal_error")
            }
        case let e as AdapterExportError:
            return APIError(status: .conflict, message: e.description, type: "invalid_request_error", param: param, code: "conflict")
        case let e as ModelError:
            return .badRequest(e.description, param: param, code: "invalid_value")
        case let e as TrainingError:
            return .badRequest("\(e)", param: param, code: "invalid_value")
        default:
            return APIError.from(error)
        }
    }
}

/// Runs a blocking service call off the cooperative pool, mapping domain errors to HTTP.
func service<T: Sendable>(param: String? = nil, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    do {
        return try await offload(work)
    } catch {
        throw APIError.domain(error, param: param)
    }
}

/// A JSON response from an Encodable value (the registry's records).
func encoded<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try e.encode(value))))
}
