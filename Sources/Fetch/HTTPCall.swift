import Foundation

/// One HTTP request to an API server (`lora serve`) through libcurl, the same transfer code that
/// downloads models: the whole response, or its body streamed as it arrives (server-sent events).
/// Unlike downloads, nothing is retried: API calls that change state (submit, promote) must not be
/// sent twice behind the caller's back.
public struct HTTPCall: Sendable {
    public enum Method: String, Sendable { case get = "GET", post = "POST", delete = "DELETE" }

    public var method: Method
    public var url: String
    /// Header lines, `Name: value`.
    public var headers: [String]
    public var body: Data?

    public init(_ method: Method, _ url: String, headers: [String] = [], body: Data? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// A response: status, header fields and body.
    public struct Response: Sendable {
        public let status: Int
        public let fields: [(name: String, value: String)]
        public let body: Data

        /// The last value of a header field, matched case-insensitively.
        public func header(_ name: String) -> String? {
            fields.last(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame })?.value
        }
    }

    /// The connection failed (refused, timed out, reset): no HTTP status to report.
    public struct TransportError: Error, CustomStringConvertible, Sendable {
        public let method: String
        public let url: String
        public let code: Int
        public let message: String
        public var description: String { "\(method) \(url): \(message) (curl error \(code))" }
    }

    /// Sends the request and returns the whole response, whatever its status.
    public func send(options: FetchOptions = FetchOptions()) throws -> Response {
        var body = Data()
        let (status, fields) = try stream(options: options) { bytes in body.append(bytes); return true }
        return Response(status: status, fields: fields, body: body)
    }

    /// Sends the request and hands the body to `onBytes` chunk by chunk as it arrives (return false
    /// to hang up); returns the status and header fields.
    public func stream(options: FetchOptions = FetchOptions(),
                       onBytes: (Data) -> Bool) throws -> (status: Int, fields: [(name: String, value: String)]) {
        var lines = headers
        // No `Expect: 100-continue` round trip before a body: the server answers at once anyway.
        if body != nil { lines.append("Expect:") }
        let m: CurlTransfer.Method
        switch method {
        case .get: m = .get
        case .delete: m = .delete
        case .post: m = .post(body ?? Data())
        }
        let result = CurlTransfer(url: url).perform(method: m, headers: lines, range: nil, options: options, sinkEveryStatus: true) { _, bytes in
            onBytes(Data(bytes))
        }
        guard result.code == 0 || (result.code == CurlCodes.writeError && result.final != nil) else {
            throw TransportError(method: method.rawValue, url: url, code: result.code, message: result.message)
        }
        guard let head = result.final, head.status != 0 else {
            throw TransportError(method: method.rawValue, url: url, code: result.code, message: "no HTTP response")
        }
        return (head.status, head.fields)
    }
}
