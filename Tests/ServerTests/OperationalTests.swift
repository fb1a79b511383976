import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Server
import Service
import XCTest

/// Back-pressure, limits, request ids, metrics, health, and a client that goes away.
final class OperationalTests: ServerTestCase {
    let requestId = HTTPField.Name("X-Request-Id")!

    func testOverloadIs429WithRetryAfter() async throws {
        backend.refuse = .overloaded(retryAfterSeconds: 3)
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a"}"#)
            try self.assertError(r, status: .tooManyRequests, param: nil, code: "rate_limit_exceeded", type: "rate_limit_error")
            XCTAssertEqual(r.headers[.retryAfter], "3")
        }
    }

    func testARefusalCancelsThePromptsAlreadyQueued() async throws {
        backend.holdAfterFirstWord = true
        backend.refuseAfter = (1, .overloaded(retryAfterSeconds: 2))
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":["a b","c d"]}"#)
            try self.assertError(r, status: .tooManyRequests, param: nil, type: "rate_limit_error")
            XCTAssertEqual(r.headers[.retryAfter], "2")
            XCTAssertEqual(self.backend.sequences.count, 1)
            XCTAssertTrue(self.backend.sequences[0].cancelled, "the prompt queued before the refusal is cancelled")
        }
    }

    func testBodyOverTheLimitIs413() async throws {
        limits.maxBodyBytes = 1000
        try await withServer { client in
            let prompt = String(repeating: "a", count: 2000)
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"\#(prompt)"}"#)
            try self.assertError(r, status: .contentTooLarge, param: nil, code: "request_too_large", mentions: ["1000 bytes"])
            XCTAssertTrue(self.backend.submitted.isEmpty)
        }
    }

    func testHeadersOverTheLimitAre431() async throws {
        limits.maxHeaderBytes = 2048
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a"}"#,
                                        headers: [.init("X-Padding")!: String(repeating: "p", count: 4000)])
            try self.assertError(r, status: .requestHeaderFieldsTooLarge, param: nil, mentions: ["2048 bytes"])
        }
    }

    func testHeadersOverTheParsersHardCapAre431InOpenAIsShapeNotABare400() async throws {
        limits.maxHeaderBytes = 2048   // hard cap: max(64 KiB, 2 x 2048)
        let hard = limits.hardHeaderBytes
        try await withServer { client in
            let socket = try RawHTTPClient(port: try XCTUnwrap(client.port))
            let body = #"{"model":"greet","prompt":"a"}"#
            let padding = String(repeating: "p", count: hard + 1024)
            try socket.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nX-Padding: \(padding)\r\n"
                            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let answer = try socket.read(until: "}}", deadline: 10)
            XCTAssertTrue(answer.hasPrefix("HTTP/1.1 431"), answer)
            XCTAssertTrue(answer.lowercased().contains("connection: close"), answer)
            let json = try XCTUnwrap(answer.range(of: "\r\n\r\n").map { String(answer[$0.upperBound...]) })
            let error = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["error"] as? [String: Any])
            XCTAssertEqual(error["code"] as? String, "request_header_fields_too_large")
            XCTAssertEqual(error["type"] as? String, "invalid_request_error")
            XCTAssertTrue((error["message"] as? String ?? "").contains("\(hard) bytes"), "\(error)")
            XCTAssertTrue(self.backend.submitted.isEmpty)
        }
    }

    func testRequestIdIsEchoedOrMade() async throws {
        try await withServer { client in
            let given = try await client.execute(uri: "/healthz", method: .get, headers: [self.requestId: "abc-123"])
            XCTAssertEqual(given.headers[self.requestId], "abc-123")
            let made = try await client.execute(uri: "/healthz", method: .get)
            XCTAssertEqual(made.headers[self.requestId]?.count, 32)
            let unusable = try await client.execute(uri: "/healthz", method: .get, headers: [self.requestId: "has spaces"])
            XCTAssertNotEqual(unusable.headers[self.requestId], "has spaces")
            let onError = try await self.post(client, "/v1/completions", "{", headers: [self.requestId: "err-1"])
            XCTAssertEqual(onError.headers[self.requestId], "err-1")
        }
    }

    func testHealthAndReadiness() async throws {
        try await withServer { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            XCTAssertEqual(health.status, .ok)
            XCTAssertEqual(String(buffer: health.body), #"{"status":"ok"}"#)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(String(buffer: ready.body), #"{"status":"ready"}"#)
            XCTAssertEqual(ready.status, .ok)
            self.backend.isReady = false
            let notReady = try await client.execute(uri: "/readyz", method: .get)
            XCTAssertEqual(notReady.status, .serviceUnavailable)
            XCTAssertEqual(String(buffer: notReady.body), #"{"status":"not ready"}"#)
        }
    }

    func testMetricsCountRequestsByRouteModelAndStatus() async throws {
        try await withServer { client in
            _ = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a"}"#)
            _ = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"b"}"#)
            _ = try await self.post(client, "/v1/completions", #"{"model":"nope","prompt":"a"}"#)
            _ = try await self.post(client, "/v1/chat/completions", #"{"model":"tiny-base","messages":[{"role":"user","content":"a"}]}"#)
            let r = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
            let text = String(buffer: r.body)
            for line in [#"lora_http_requests_total{route="/v1/completions",model="greet@2",status="200"} 2"#,
                         #"lora_http_requests_total{route="/v1/completions",model="none",status="404"} 1"#,
                         #"lora_http_requests_total{route="/v1/chat/completions",model="tiny-base",status="200"} 1"#] {
                XCTAssertTrue(text.contains(line), "missing \(line) in\n\(text)")
            }
            XCTAssertTrue(text.contains(#"lora_http_request_duration_seconds_count{route="/v1/completions"} 3"#), text)
        }
    }

    func testAClientThatDisconnectsMidStreamCancelsItsSequence() async throws {
        backend.holdAfterFirstWord = true
        try await withServer { client in
            let port = try XCTUnwrap(client.port)
            let socket = try RawHTTPClient(port: port)
            let body = #"{"model":"greet","prompt":"a b c","stream":true}"#
            try socket.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let first = try socket.read(until: "\"text\":\"A\"", deadline: 10)
            XCTAssertTrue(first.hasPrefix("HTTP/1.1 200"), first)
            let sequence = try XCTUnwrap(self.backend.sequences.first)
            XCTAssertFalse(sequence.cancelled)
            socket.close()
            let deadline = Date().addingTimeInterval(10)
            while !sequence.cancelled && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
            XCTAssertTrue(sequence.cancelled, "the sequence is cancelled once its client is gone")
        }
    }

    func testAClientThatDisconnectsBeforeAWholeAnswerCancelsItsSequence() async throws {
        backend.holdAfterFirstWord = true
        try await withServer { client in
            let socket = try RawHTTPClient(port: try XCTUnwrap(client.port))
            let body = #"{"model":"greet","prompt":"a b c"}"#
            try socket.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let deadline = Date().addingTimeInterval(10)
            while self.backend.sequences.isEmpty && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
            let sequence = try XCTUnwrap(self.backend.sequences.first)
            socket.close()
            while !sequence.cancelled && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
            XCTAssertTrue(sequence.cancelled)
        }
    }
}
