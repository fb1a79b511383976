import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Registry
import Service
import TestSupport
import XCTest

/// `/v1/tasks...` over a real socket: tasks with their aliases, versions, promote, rollback,
/// history, archive, the adapter tar and importing one.
final class APIRegistryTests: APITestCase {
    let alpha = TestPaths.fixture("peft/initial-adapter")
    let beta = TestPaths.fixture("peft/final-adapter")

    func testTasksVersionsPromoteRollbackAndHistory() async throws {
        try service.importAdapter(task: "greet", directory: alpha, base: "tiny", actor: "tester")
        try service.importAdapter(task: "greet", directory: beta, base: "tiny", actor: "tester")
        try await withAPI { [self] client in
            let tasks = try list(try await request(client, .get, "/v1/tasks"))
            XCTAssertEqual(tasks.map { $0["name"] as? String }, ["greet"])
            let task = try object(try await request(client, .get, "/v1/tasks/greet"))
            XCTAssertEqual(task["aliases"] as? [String: Int], ["latest": 2])
            try assertError(try await request(client, .get, "/v1/tasks/nope"), .notFound, param: nil, code: "not_found", mentions: ["nope"])

            let versions = try list(try await request(client, .get, "/v1/tasks/greet/versions"))
            XCTAssertEqual(versions.map { $0["version"] as? Int }, [1, 2])
            XCTAssertEqual(versions.map { $0["base"] as? String }, ["tiny", "tiny"])
            let one = try object(try await request(client, .get, "/v1/tasks/greet/versions/1"))
            XCTAssertEqual(one["version"] as? Int, 1)
            // Past a PostgreSQL integer (found by schemathesis: it was a 500).
            try assertError(try await request(client, .get, "/v1/tasks/greet/versions/3447587897133954/adapter"), .notFound, param: "version")
            try assertError(try await request(client, .get, "/v1/tasks/greet/versions/3"), .notFound, param: nil, mentions: ["greet@3"])

            let p1 = try await request(client, .post, "/v1/tasks/greet/promote", json: #"{"version":1,"reason":"first"}"#)
            XCTAssertEqual(p1.status, .ok, String(buffer: p1.body))
            XCTAssertEqual((try object(p1)["task"] as? [String: Any])?["aliases"] as? [String: Int], ["latest": 2, "production": 1])
            _ = try await request(client, .post, "/v1/tasks/greet/promote", json: #"{"version":2,"alias":"production"}"#)
            let back = try await request(client, .post, "/v1/tasks/greet/rollback", json: #"{"reason":"regressed"}"#)
            XCTAssertEqual(back.status, .ok, String(buffer: back.body))
            XCTAssertEqual(try service.task(named: "greet").aliases["production"], 1)
            try assertError(try await request(client, .post, "/v1/tasks/greet/rollback"), .conflict, param: "alias", mentions: ["nothing to roll back"])
            try assertError(try await request(client, .post, "/v1/tasks/greet/promote", json: #"{"version":9}"#), .notFound, param: "alias",
                            mentions: ["greet@9"])
            try assertError(try await request(client, .post, "/v1/tasks/greet/promote", json: #"{"version":1,"alias":"latest"}"#), .badRequest,
                            param: "alias", mentions: ["latest"])
            try assertError(try await request(client, .post, "/v1/tasks/greet/promote", json: #"{"alias":"x"}"#), .badRequest, param: "version")

            let history = try list(try await request(client, .get, "/v1/tasks/greet/history?alias=production"))
            XCTAssertEqual(history.map { $0["action"] as? String }, ["promote", "promote", "rollback"])
            XCTAssertEqual(history.map { $0["reason"] as? String }, ["first", "", "regressed"])
            XCTAssertEqual(history.map { $0["actor"] as? String }, ["http", "http", "http"])

            let archived = try await request(client, .post, "/v1/tasks/greet/versions/2/archive")
            XCTAssertEqual(archived.status, .ok, String(buffer: archived.body))
            try assertError(try await request(client, .post, "/v1/tasks/greet/versions/1/archive"), .conflict, param: nil, mentions: ["production"])
        }
    }

    func testTheAdapterDownloadsAsTheStoredTarAndImportsAsANewVersion() async throws {
        let v1 = try service.importAdapter(task: "greet", directory: beta, base: "tiny", actor: "tester")
        try await withAPI { [self] client in
            let r = try await request(client, .get, "/v1/tasks/greet/versions/1/adapter")
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "application/x-tar")
            XCTAssertEqual(r.headers[.contentDisposition], #"attachment; filename="greet-1.tar""#)
            XCTAssertEqual(r.headers[.eTag], "\"\(v1.sha256)\"")
            let tar = Array(r.body.readableBytesView)
            XCTAssertEqual(ArtifactStore.sha256(Data(tar)), v1.sha256, "the registry's stored tar, byte for byte")
            try assertError(try await request(client, .get, "/v1/tasks/greet/versions/7/adapter"), .notFound, param: nil, mentions: ["greet@7"])
            try assertError(try await request(client, .get, "/v1/tasks/greet/versions/x/adapter"), .notFound, param: "version")

            // format=gguf: llama.cpp's layout, the same bytes `lora export --format gguf` writes.
            let g = try await request(client, .get, "/v1/tasks/greet/versions/1/adapter?format=gguf&dtype=f16")
            XCTAssertEqual(g.status, .ok, String(buffer: g.body))
            XCTAssertEqual(g.headers[.contentType], "application/octet-stream")
            XCTAssertEqual(g.headers[.contentDisposition], #"attachment; filename="greet-1.gguf""#)
            XCTAssertEqual(g.headers[.eTag], "\"\(ArtifactStore.sha256(Data(g.body.readableBytesView)))\"", "the GGUF's own sha256")
            let exported = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-route-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: exported) }
            _ = try service.exportAdapter("greet@1", to: exported, format: .gguf, dtype: .f16)
            XCTAssertEqual(Data(g.body.readableBytesView), try Data(contentsOf: exported.appendingPathComponent("adapter.gguf")))
            XCTAssertEqual(Array(g.body.readableBytesView.prefix(4)), Array("GGUF".utf8))
            try assertError(try await request(client, .get, "/v1/tasks/greet/versions/1/adapter?format=onnx"), .badRequest, param: "format")
            try assertError(try await request(client, .get, "/v1/tasks/greet/versions/1/adapter?format=gguf&dtype=q4"), .badRequest, param: "dtype")

            var h = HTTPFields()
            h[.contentType] = "application/x-tar"
            let imported = try await client.execute(uri: "/v1/tasks/copied/versions?base=tiny", method: .post, headers: h, body: ByteBuffer(bytes: tar))
            XCTAssertEqual(imported.status, .created, String(buffer: imported.body))
            let v = try object(imported)
            XCTAssertEqual(v["version"] as? Int, 1)
            XCTAssertEqual(v["sha256"] as? String, v1.sha256, "the same files make the same archive")
            XCTAssertEqual(try service.version("copied@1").sha256, v1.sha256)

            var broken = tar
            broken[200] ^= 0xFF
            try assertError(try await client.execute(uri: "/v1/tasks/copied/versions", method: .post, headers: h, body: ByteBuffer(bytes: broken)),
                            .badRequest, param: nil, mentions: ["checksum"])
            try assertError(try await client.execute(uri: "/v1/tasks/Bad/versions", method: .post, headers: h, body: ByteBuffer(bytes: tar)),
                            .badRequest, param: nil, mentions: ["Bad"])
            XCTAssertEqual(try service.versions(task: "copied").count, 1, "nothing registered by the refused imports")
        }
    }
}
