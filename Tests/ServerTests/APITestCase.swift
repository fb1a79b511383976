import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Registry
import Server
import Service
import ServiceTestSupport
import TestSupport
import XCTest

/// The fine-tuning API in-process on a real socket (port 0), over a database of its own on the
/// shared test cluster, with the tiny fixture model registered as the base `tiny`.
class APITestCase: RegistryTestCase {
    var ring: APIKeyRing!
    var requireKeys = false
    var maxUploadBytes = 1 << 20
    var keys: APIKeyService { APIKeyService(registry: service) }
    let tinyModel = TestPaths.fixture("models/tiny-llama-tied")
    let trainData = TestPaths.fixture("peft/train.jsonl")

    override func setUpWithError() throws {
        try super.setUpWithError()
        ring = APIKeyRing(conninfo: db.conninfo, recheckInterval: 5)
        try service.addBaseModel(name: "tiny", source: tinyModel, actor: "tester")
    }

    override func tearDown() {
        ring?.stop()
        super.tearDown()
    }

    func withAPI(_ test: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var logger = Logger(label: "api-tests")
        logger.logLevel = .warning
        try ring.reload()
        var server = OpenAIServer(backend: ScriptedBackend(), port: 0, logger: logger)
        server.api = APIServices(registry: service, auth: AuthPolicy(ring: ring, requireKeys: requireKeys), maxUploadBytes: maxUploadBytes)
        try await server.application().test(.live) { client in try await test(client) }
    }

    // MARK: - Requests

    func request(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, json: String? = nil,
                 key: String? = nil, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        if json != nil { h[.contentType] = "application/json" }
        if let key { h[.authorization] = "Bearer \(key)" }
        return try await client.execute(uri: uri, method: method, headers: h, body: json.map { ByteBuffer(string: $0) })
    }

    /// `POST /v1/files` as multipart/form-data with `purpose` and `file`.
    func upload(_ client: any TestClientProtocol, _ bytes: [UInt8], filename: String = "train.jsonl", purpose: String = "fine-tune",
                key: String? = nil, extraField: String? = nil) async throws -> TestResponse {
        let boundary = "----lora-test-\(UUID().uuidString)"
        var body = [UInt8]()
        func add(_ s: String) { body += Array(s.utf8) }
        add("--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n\(purpose)\r\n")
        if let extraField { add("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(extraField)\"\r\n\r\nx\r\n") }
        add("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\n")
        add("Content-Type: application/octet-stream\r\n\r\n")
        body += bytes
        add("\r\n--\(boundary)--\r\n")
        var h = HTTPFields()
        h[.contentType] = "multipart/form-data; boundary=\(boundary)"
        if let key { h[.authorization] = "Bearer \(key)" }
        return try await client.execute(uri: "/v1/files", method: .post, headers: h, body: ByteBuffer(bytes: body))
    }

    func uploadTrainData(_ client: any TestClientProtocol, key: String? = nil) async throws -> String {
        let r = try await upload(client, Array(try Data(contentsOf: trainData)), key: key)
        XCTAssertEqual(r.status, .ok, String(buffer: r.body))
        return try XCTUnwrap(try object(r)["id"] as? String)
    }

    /// A small job on the tiny model.
    func jobBody(file: String, task: String = "api-task", steps: Int = 2, extra: String = "") -> String {
        #"{"model":"tiny","training_file":"\#(file)","suffix":"\#(task)","hyperparameters":{"max_steps":\#(steps),"batch_size":2,"lora_r":4,"learning_rate_multiplier":5,"checkpoint_every":1000}\#(extra)}"#
    }

    /// XCTAssertEqual with its arguments evaluated first (XCTest's autoclosures cannot await).
    func expectEqual<T: Equatable>(_ a: T, _ b: T, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a, b, message, file: file, line: line)
    }

    // MARK: - Bodies

    func object(_ r: TestResponse, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(String(buffer: r.body).utf8)) as? [String: Any],
                      "not a JSON object: \(String(buffer: r.body))", file: file, line: line)
    }

    func list(_ r: TestResponse, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        XCTAssertEqual(r.status, .ok, String(buffer: r.body), file: file, line: line)
        let o = try object(r, file: file, line: line)
        XCTAssertEqual(o["object"] as? String, "list", file: file, line: line)
        return try XCTUnwrap(o["data"] as? [[String: Any]], file: file, line: line)
    }

    /// Checks an OpenAI error body: status, param, code, and that the message names `mentions`.
    func assertError(_ r: TestResponse, _ status: HTTPResponse.Status, param: String?, code: String? = nil,
                     mentions: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(r.status, status, String(buffer: r.body), file: file, line: line)
        let error = try XCTUnwrap(try object(r, file: file, line: line)["error"] as? [String: Any], file: file, line: line)
        XCTAssertEqual(Set(error.keys), ["message", "type", "param", "code"], file: file, line: line)
        XCTAssertEqual(error["param"] as? String, param, "param", file: file, line: line)
        if let code { XCTAssertEqual(error["code"] as? String, code, file: file, line: line) }
        let message = error["message"] as? String ?? ""
        for m in mentions { XCTAssertTrue(message.contains(m), "message \(message) should mention \(m)", file: file, line: line) }
    }
}
