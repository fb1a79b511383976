import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Server
import Service
import XCTest

/// `stream: true`: server-sent events in OpenAI's chunk format, byte for byte.
final class StreamingTests: ServerTestCase {
    func testChatStreamSendsRoleThenContentThenFinishThenUsageThenDone() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/chat/completions",
                                        #"{"model":"greet","messages":[{"role":"user","content":"hi you"}],"stream":true,"stream_options":{"include_usage":true}}"#)
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "text/event-stream")
            let head = #"{"id":"chatcmpl-ID","object":"chat.completion.chunk","created":0,"model":"greet@2","choices":"#
            XCTAssertEqual(Self.normalized(String(buffer: r.body)),
                           "data: " + head + #"[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"# + "\n\n"
                           + "data: " + head + #"[{"index":0,"delta":{"content":"HI"},"logprobs":null,"finish_reason":null}],"usage":null}"# + "\n\n"
                           + "data: " + head + #"[{"index":0,"delta":{"content":" YOU"},"logprobs":null,"finish_reason":null}],"usage":null}"# + "\n\n"
                           + "data: " + head + #"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"# + "\n\n"
                           + "data: " + head + #"[],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}"# + "\n\n"
                           + "data: [DONE]\n\n")
            self.assertOneId(String(buffer: r.body))
        }
    }

    func testCompletionStreamWithoutUsage() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"tiny-base","prompt":"x y z","max_tokens":2,"stream":true}"#)
            XCTAssertEqual(r.status, .ok)
            let head = #"{"id":"cmpl-ID","object":"text_completion","created":0,"model":"tiny-base","choices":"#
            XCTAssertEqual(Self.normalized(String(buffer: r.body)),
                           "data: " + head + #"[{"index":0,"text":"X","logprobs":null,"finish_reason":null}]}"# + "\n\n"
                           + "data: " + head + #"[{"index":0,"text":" Y","logprobs":null,"finish_reason":null}]}"# + "\n\n"
                           + "data: " + head + #"[{"index":0,"text":"","logprobs":null,"finish_reason":"length"}]}"# + "\n\n"
                           + "data: [DONE]\n\n")
        }
    }

    /// A call of one sequence reads its events straight from the sequence's stream; through the merged
    /// stream of several (`LORA_SERVE_HANDOFF=token`) the bytes are the same.
    func testOneSequenceStreamsTheSameBytesWithAndWithoutTheMergedStream() async throws {
        var bodies: [String] = []
        for direct in [true, false] {
            StreamHandOff.direct = direct
            defer { StreamHandOff.direct = true }
            try await withServer { client in
                let r = try await self.post(client, "/v1/chat/completions",
                                            #"{"model":"greet","messages":[{"role":"user","content":"hi you"}],"stream":true,"stream_options":{"include_usage":true}}"#)
                XCTAssertEqual(r.status, .ok)
                bodies.append(Self.normalized(String(buffer: r.body)))
            }
        }
        XCTAssertEqual(bodies.count, 2)
        XCTAssertEqual(bodies[0], bodies[1])
        XCTAssertTrue(bodies[0].contains(#""delta":{"content":" YOU"}"#) && bodies[0].hasSuffix("data: [DONE]\n\n"), bodies[0])
    }

    func testStreamOfSeveralPromptsTagsEachChunkWithItsIndex() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":["a b","c"],"stream":true,"stream_options":{"include_usage":true}}"#)
            let events = String(buffer: r.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }
            XCTAssertEqual(events.last, "data: [DONE]")
            var text: [Int: String] = [:]
            var finishes: [Int: String] = [:]
            for e in events.dropLast() {
                let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(e.dropFirst(6).utf8)) as? [String: Any])
                for c in obj["choices"] as? [[String: Any]] ?? [] {
                    let i = try XCTUnwrap(c["index"] as? Int)
                    text[i, default: ""] += c["text"] as? String ?? ""
                    if let f = c["finish_reason"] as? String { finishes[i] = f }
                }
            }
            XCTAssertEqual(text, [0: "A B", 1: "C"])
            XCTAssertEqual(finishes, [0: "stop", 1: "stop"])
            XCTAssertTrue(events[events.count - 2].contains(#""choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}"#))
        }
    }

    func testAnErrorAfterAdmissionIsAnErrorEventThenDone() async throws {
        backend.failAfterFirstWord = .internalError("the engine lost its KV slot")
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a b","stream":true}"#)
            let events = String(buffer: r.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }
            XCTAssertEqual(events.count, 3, "\(events)")
            XCTAssertTrue(events[0].contains(#""text":"A""#))
            XCTAssertEqual(events[1], #"data: {"error":{"message":"the engine lost its KV slot","type":"server_error","param":null,"code":"internal_error"}}"#)
            XCTAssertEqual(events[2], "data: [DONE]")
        }
    }

    func testAnErrorAfterAdmissionWithoutStreamingIsItsStatus() async throws {
        backend.failAfterFirstWord = .unavailable("draining")
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a b"}"#)
            try self.assertError(r, status: .serviceUnavailable, param: nil, code: "service_unavailable", type: "server_error")
        }
    }

    func assertOneId(_ body: String, file: StaticString = #filePath, line: UInt = #line) {
        let ids = body.matches(of: #/"id":"([a-z]+-[0-9a-f]{24})"/#).map { String($0.output.1) }
        XCTAssertFalse(ids.isEmpty, file: file, line: line)
        XCTAssertEqual(Set(ids).count, 1, "every chunk carries the same id", file: file, line: line)
    }
}
