import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// `/v1/files` over a real socket: upload (multipart, validated, stored with its sha256), list
/// pages, retrieve, content, delete (refused while a queued job uses the file).
final class APIFilesTests: APITestCase {
    func testAnUploadIsValidatedStoredWithItsSha256AndListedNewestFirstInPages() async throws {
        let bytes = Array(try Data(contentsOf: trainData))
        try await withAPI { [self] client in
            let r = try await upload(client, bytes)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            let f = try object(r)
            XCTAssertEqual(f["object"] as? String, "file")
            XCTAssertEqual(f["id"] as? String, "file-1")
            XCTAssertEqual(f["bytes"] as? Int, bytes.count)
            XCTAssertEqual(f["filename"] as? String, "train.jsonl")
            XCTAssertEqual(f["purpose"] as? String, "fine-tune")
            XCTAssertEqual(f["sha256"] as? String, SHA256.hash(data: Data(bytes)).map { String(format: "%02x", $0) }.joined())
            XCTAssertEqual(f["records"] as? Int, 8)
            XCTAssertNotNil(f["created_at"] as? Int)
            for _ in 0..<2 { _ = try await upload(client, bytes) }

            let page1 = try await request(client, .get, "/v1/files?limit=2")
            XCTAssertEqual(try list(page1).map { $0["id"] as? String }, ["file-3", "file-2"])
            XCTAssertEqual(try object(page1)["has_more"] as? Bool, true)
            let page2 = try await request(client, .get, "/v1/files?limit=2&after=file-2")
            XCTAssertEqual(try list(page2).map { $0["id"] as? String }, ["file-1"])
            XCTAssertEqual(try object(page2)["has_more"] as? Bool, false)

            let one = try await request(client, .get, "/v1/files/file-2")
            XCTAssertEqual(try object(one)["id"] as? String, "file-2")
            let content = try await request(client, .get, "/v1/files/file-2/content")
            XCTAssertEqual(Array(content.body.readableBytesView), bytes)

            let deleted = try await request(client, .delete, "/v1/files/file-2")
            XCTAssertEqual(try object(deleted)["deleted"] as? Bool, true)
            try assertError(try await request(client, .get, "/v1/files/file-2"), .notFound, param: nil, code: "not_found", mentions: ["file-2"])
            try assertError(try await request(client, .delete, "/v1/files/file-2"), .notFound, param: nil, code: "not_found")
            try assertError(try await request(client, .get, "/v1/files/nonsense"), .notFound, param: "file_id")
            try assertError(try await request(client, .get, "/v1/files?limit=0"), .badRequest, param: "limit")
            try assertError(try await request(client, .get, "/v1/files?after=ftjob-x"), .badRequest, param: "after")
        }
    }

    func testAMalformedUploadNamesItsLineAndFieldAndStoresNothing() async throws {
        let bad = Array("{\"text\": \"fine\"}\n\n{\"prompt\": \"q\", \"completion\": 7}\n".utf8)
        try await withAPI { [self] client in
            try assertError(try await upload(client, bad, filename: "mine.jsonl"), .badRequest, param: "file", code: "invalid_value",
                            mentions: ["mine.jsonl:3", "'completion'"])
            try assertError(try await upload(client, Array("not json\n".utf8)), .badRequest, param: "file", mentions: ["train.jsonl:1", "not valid JSON"])
            try assertError(try await upload(client, []), .badRequest, param: "file", mentions: ["no records"])
            try assertError(try await upload(client, Array("{\"text\":\"a\"}\n".utf8), purpose: "assistants"), .badRequest, param: "purpose")
            try assertError(try await upload(client, Array("{\"text\":\"a\"}\n".utf8), extraField: "color"), .badRequest, param: "color",
                            code: "unknown_parameter")
            let notMultipart = try await request(client, .post, "/v1/files", json: "{}")
            try assertError(notMultipart, .badRequest, param: nil, code: "invalid_content_type", mentions: ["multipart/form-data"])
            expectEqual(try list(try await request(client, .get, "/v1/files")).count, 0, "nothing stored")
        }
    }

    func testMalformedMultipartBodiesAre400sNamingWhatIsWrongAndStoreNothing() async throws {
        try await withAPI { [self] client in
            func post(_ body: String, boundary: String = "b0undary") async throws -> TestResponse {
                var h = HTTPFields()
                h[.contentType] = "multipart/form-data; boundary=\(boundary)"
                return try await client.execute(uri: "/v1/files", method: .post, headers: h, body: ByteBuffer(string: body))
            }
            let purpose = "--b0undary\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
            let file = "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n\r\n{\"text\":\"a\"}\n"
            // The last part never closed: its bytes are not taken as the whole file.
            try assertError(try await post(purpose + file), .badRequest, param: nil, code: "invalid_multipart", mentions: ["not closed", "--b0undary"])
            try assertError(try await post("no delimiter at all"), .badRequest, param: nil, code: "invalid_multipart", mentions: ["no part"])
            try assertError(try await post("--b0undary\r\nX-Other: 1\r\n\r\nx\r\n--b0undary--\r\n"), .badRequest, param: nil,
                            code: "invalid_multipart", mentions: ["Content-Disposition name"])
            try assertError(try await post("--b0undary\r\nbad header line\r\n\r\nx\r\n--b0undary--\r\n"), .badRequest, param: nil,
                            code: "invalid_multipart", mentions: ["headers"])
            try assertError(try await post(purpose + file, boundary: ""), .badRequest, param: nil, code: "invalid_content_type")
            // Closed properly, the same parts upload (a quoted boundary, a preamble before the first delimiter).
            let ok = try await post("preamble\r\n" + purpose + file + "\r\n--b0undary--\r\n", boundary: "\"b0undary\"")
            XCTAssertEqual(ok.status, .ok, String(buffer: ok.body))
            XCTAssertEqual(try object(ok)["filename"] as? String, "t.jsonl")
            XCTAssertEqual(try object(ok)["bytes"] as? Int, 13)
            expectEqual(try list(try await request(client, .get, "/v1/files")).count, 1, "only the well-formed upload was stored")
        }
    }

    func testAnUploadOverTheSizeLimitIs413() async throws {
        maxUploadBytes = 4096
        let big = Array(String(repeating: "{\"text\": \"\(String(repeating: "a", count: 100))\"}\n", count: 60).utf8)
        try await withAPI { [self] client in
            try assertError(try await upload(client, big), .contentTooLarge, param: nil, code: "request_too_large", mentions: ["4096"])
        }
    }

    func testAFileUsedByAQueuedJobCannotBeDeletedUntilTheJobIsOver() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            let job = try object(try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file)))
            let id = try XCTUnwrap(job["id"] as? String)
            try assertError(try await request(client, .delete, "/v1/files/\(file)"), .conflict, param: nil, code: "conflict", mentions: [id])
            _ = try await request(client, .post, "/v1/fine_tuning/jobs/\(id)/cancel")
            expectEqual(try await request(client, .delete, "/v1/files/\(file)").status, .ok)
            // The job keeps its own copy of the data; it no longer names the deleted file.
            let after = try object(try await request(client, .get, "/v1/fine_tuning/jobs/\(id)"))
            XCTAssertEqual(after["training_file"] as? String, "train.jsonl")
        }
    }
}
