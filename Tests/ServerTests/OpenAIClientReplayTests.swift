import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Server
import Service
import TestSupport
import XCTest

/// The official `openai` Python client, replayed without Python: the requests it sent and the
/// responses it accepted (recorded by scripts/fixtures/record_openai_client.py against `lora serve`
/// on the default model) are sent again to the server over the real engine, and every response
/// must match what the client accepted: status, content type, and the body byte for byte except
/// the response id, the creation time and the wording of an error message.
final class OpenAIClientReplayTests: XCTestCase {
    static let names = ["models", "completion", "chat", "chat-stream", "completion-stream", "model-not-found"]

    func testTheOpenAIClientsRecordedExchangesReplayIdentically() async throws {
        let exchanges = try Self.names.map { name in
            try JSONDecoder().decode(RecordedExchange.self, from: Data(contentsOf: TestPaths.fixture("openai-client/\(name).json")))
        }
        let modelId = try XCTUnwrap(exchanges[0].response.body.firstMatch(of: #/"id":"([^"]+)"/#)).output.1
        let model = try LanguageModel.load(path: try TestPaths.requireDefaultModel().path)
        var logger = Logger(label: "openai-replay")
        logger.logLevel = .warning
        let engine = try ServingEngine(model: model, baseModelId: String(modelId), registry: nil, options: .init(), logger: logger)
        engine.start()
        defer { engine.shutdown() }
        let server = OpenAIServer(backend: engine, port: 0, logger: logger)
        try await server.application().test(.live) { client in
            for x in exchanges {
                var headers = HTTPFields()
                for (k, v) in x.request.headers { headers[HTTPField.Name(k)!] = v }
                let r = try await client.execute(uri: x.request.path, method: HTTPRequest.Method(x.request.method)!, headers: headers,
                                                 body: x.request.body.map { ByteBuffer(string: $0) })
                XCTAssertEqual(Int(r.status.code), x.response.status, x.name)
                XCTAssertEqual(r.headers[.contentType], x.response.headers["content-type"], x.name)
                let got = String(buffer: r.body)
                if x.response.status == 200 {
                    XCTAssertEqual(Self.normalized(got), Self.normalized(x.response.body), x.name)
                } else {
                    XCTAssertEqual(try Self.errorWithoutMessage(got), try Self.errorWithoutMessage(x.response.body), x.name)
                }
            }
        }
    }

    static func normalized(_ text: String) -> String {
        var s = text.replacingOccurrences(of: #""id":"(chatcmpl|cmpl)-[0-9a-f]{24}""#, with: #""id":"$1-ID""#, options: .regularExpression)
        s = s.replacingOccurrences(of: #""created":[0-9]+"#, with: #""created":0"#, options: .regularExpression)
        return s
    }

    /// An OpenAI error body with its message replaced by whether it had one (its wording depends on
    /// whether a registry is configured; the fields the client reads do not).
    static func errorWithoutMessage(_ text: String) throws -> NSDictionary {
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        var error = try XCTUnwrap(obj["error"] as? [String: Any])
        error["message"] = ((error["message"] as? String)?.isEmpty == false)
        obj["error"] = error
        return obj as NSDictionary
    }
}
