import Foundation

/// Everything that can go wrong while fetching a model. Each case names the URL (or path) it is about,
/// so a message printed alone tells the user what failed and where.
public enum FetchError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The spec is not a URL this fetcher understands.
    case invalidSpec(spec: String, reason: String)
    /// The server answered with an HTTP error status (after retries, when the status is retryable).
    case http(url: String, status: Int, body: String)
    /// libcurl failed (connection refused, timeout, TLS, ...). `code` is libcurl's CURLcode.
    case transport(url: String, code: Int, message: String)
    /// The downloaded bytes do not hash to what the source promised; the file was deleted.
    case checksumMismatch(url: String, expected: String, actual: String, source: String)
    /// The downloaded size differs from the size the source promised (X-Linked-Size); the file was deleted.
    case sizeMismatch(url: String, expected: Int64, actual: Int64)
    /// A retryable failure persisted through every attempt; `last` is the final failure.
    indirect case retriesExhausted(url: String, attempts: Int, last: FetchError)
    /// A model file (index, manifest) could not be understood.
    case invalidModelFile(url: String, reason: String)
    /// A local file-system operation in the cache failed.
    case io(path: String, operation: String, errno: Int32)
    /// The file is larger than `--max-bytes` (declared, or grown past it); its partial bytes were deleted.
    case tooLarge(url: String, declared: Int64?, received: Int64, limit: Int64)
    /// The declared size does not fit in the free space of the cache's file system; nothing was written.
    case insufficientDisk(url: String, needed: Int64, available: Int64, path: String)

    public var description: String {
        switch self {
        case let .invalidSpec(spec, reason):
            return "invalid model spec '\(spec)': \(reason)"
        case let .http(url, status, body):
            let reason = Self.reasonPhrases[status].map { " \($0)" } ?? ""
            let detail = body.isEmpty ? "" : ": \(body)"
            return "GET \(url): HTTP \(status)\(reason)\(detail)"
        case let .transport(url, code, message):
            return "GET \(url): curl error \(code): \(message)"
        case let .checksumMismatch(url, expected, actual, source):
            return "sha256 mismatch for \(url): expected \(expected) (from \(source)), got \(actual); the download was deleted"
        case let .sizeMismatch(url, expected, actual):
            return "size mismatch for \(url): expected \(expected) bytes (X-Linked-Size), got \(actual); the download was deleted"
        case let .retriesExhausted(_, attempts, last):
            return "\(last) (gave up after \(attempts) attempts)"
        case let .invalidModelFile(url, reason):
            return "cannot use \(url): \(reason)"
        case let .io(path, operation, code):
            return "\(operation) \(path): \(String(cString: strerror(code)))"
        case let .tooLarge(url, declared?, _, limit):
            return "GET \(url): the file is \(declared) bytes, over the limit of \(limit) bytes (--max-bytes); nothing was kept"
        case let .tooLarge(url, nil, received, limit):
            return "GET \(url): the body grew past the limit of \(limit) bytes (--max-bytes) without a declared size "
                + "(\(received) bytes received); the download was deleted"
        case let .insufficientDisk(url, needed, available, path):
            return "GET \(url): \(needed) more bytes are needed but only \(available) are free on the file system of \(path); "
                + "nothing was kept"
        }
    }

    private static let reasonPhrases: [Int: String] = [
        206: "Partial Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
        405: "Method Not Allowed", 408: "Request Timeout", 410: "Gone", 416: "Range Not Satisfiable",
        429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
        504: "Gateway Timeout",
    ]

    /// True when the error says the file does not exist (HTTP 404/410, or a missing file:// path),
    /// which optional model files (generation_config.json, ...) treat as "absent".
    public var isNotFound: Bool {
        switch self {
        case let .http(_, status, _): return status == 404 || status == 410
        case let .transport(_, code, _): return code == 37  // CURLE_FILE_COULDNT_READ_FILE
        case let .retriesExhausted(_, _, last): return last.isNotFound
        default: return false
        }
    }

    /// The HTTP status this error carries, if any.
    public var httpStatus: Int? {
        switch self {
        case let .http(_, status, _): return status
        case let .retriesExhausted(_, _, last): return last.httpStatus
        default: return nil
        }
    }
}
