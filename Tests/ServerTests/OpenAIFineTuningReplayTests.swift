import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TestSupport
import XCTest

/// The official `openai` Python client's fine-tuning calls, replayed without Python: the requests
/// it sent (files.create as multipart, fine_tuning.jobs.create/retrieve/list/list_events/cancel,
/// checkpoints.list, an unknown job, a malformed upload) and the responses it accepted, recorded
/// by scripts/fixtures/record_openai_finetuning.py against `lora serve` with the tiny model
/// registered as `tiny` and no worker. Sent again in order to a fresh server, every response must
/// match: status, content type and body byte for byte except the unix times.
final class OpenAIFineTuningReplayTests: APITestCase {
    func testTheOpenAIClientsFineTuningCallsReplayIdentically() async throws {
        let dir = TestPaths.fixture("openai-client/fine-tuning")
        let order = try JSONDecoder().decode([String].self, from: Data(contentsOf: dir.appendingPathComponent("order.json")))
        XCTAssertEqual(order.count, 9)
        let exchanges = try order.map { try JSONDecoder().decode(RecordedExchange.self, from: Data(contentsOf: dir.appendingPathComponent("\($0).json"))) }
        try await withAPI { client in
            for x in exchanges {
                var headers = HTTPFields()
                for (k, v) in x.request.headers { headers[HTTPField.Name(k)!] = v }
                let r = try await client.execute(uri: x.request.path, method: HTTPRequest.Method(x.request.method)!, headers: headers,
                                                 body: x.request.body.map { ByteBuffer(string: $0) })
                XCTAssertEqual(Int(r.status.code), x.response.status, x.name)
                XCTAssertEqual(r.headers[.contentType], x.response.headers["content-type"], x.name)
                XCTAssertEqual(Self.normalized(String(buffer: r.body)), Self.normalized(x.response.body), x.name)
            }
        }
    }

    static func normalized(_ text: String) -> String {
        text.replacingOccurrences(of: #""(created_at|finished_at)":[0-9]+"#, with: #""$1":0"#, options: .regularExpression)
    }
}
