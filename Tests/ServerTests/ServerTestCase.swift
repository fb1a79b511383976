import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Server
import XCTest

/// Runs the server in-process on a real socket (port 0) over a test backend.
class ServerTestCase: XCTestCase {
    var backend: ScriptedBackend!
    var metrics: ServerMetrics!
    var limits = ServerLimits()

    override func setUp() {
        backend = ScriptedBackend()
        metrics = ServerMetrics()
        limits = ServerLimits()
    }

    func withServer(_ test: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var logger = Logger(label: "server-tests")
        logger.logLevel = .warning
        let server = OpenAIServer(backend: backend, port: 0, limits: limits, metrics: metrics, logger: logger)
        try await server.application().test(.live) { client in try await test(client) }
    }

    static func body(_ json: String) -> ByteBuffer { ByteBuffer(string: json) }

    func post(_ client: any TestClientProtocol, _ uri: String, _ json: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        h[.contentType] = "application/json"
        return try await client.execute(uri: uri, method: .post, headers: h, body: ByteBuffer(string: json))
    }

    /// The body parsed as a JSON object.
    func object(_ r: TestResponse, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let data = Data(String(buffer: r.body).utf8)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], "not a JSON object: \(String(buffer: r.body))",
                             file: file, line: line)
    }

    /// Checks an OpenAI error body: status, type, param, code, and that the message names `mentions`.
    func assertError(_ r: TestResponse, status: HTTPResponse.Status, param: String?, code: String? = nil,
                     type: String = "invalid_request_error", mentions: [String] = [],
                     file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(r.status, status, String(buffer: r.body), file: file, line: line)
        XCTAssertEqual(r.headers[.contentType], "application/json", file: file, line: line)
        let error = try XCTUnwrap(try object(r, file: file, line: line)["error"] as? [String: Any], file: file, line: line)
        XCTAssertEqual(Set(error.keys), ["message", "type", "param", "code"], file: file, line: line)
        XCTAssertEqual(error["type"] as? String, type, file: file, line: line)
        XCTAssertEqual(error["param"] as? String, param, "param", file: file, line: line)
        if let code { XCTAssertEqual(error["code"] as? String, code, file: file, line: line) }
        let message = error["message"] as? String ?? ""
        for m in mentions { XCTAssertTrue(message.contains(m), "message \(message) should mention \(m)", file: file, line: line) }
    }

    /// Replaces the per-response id and creation time, so bodies compare byte for byte.
    static func normalized(_ text: String) -> String {
        var s = text.replacingOccurrences(of: #""id":"(chatcmpl|cmpl)-[0-9a-f]{24}""#, with: #""id":"$1-ID""#, options: .regularExpression)
        s = s.replacingOccurrences(of: #""created":[0-9]+"#, with: #""created":0"#, options: .regularExpression)
        return s
    }
}
