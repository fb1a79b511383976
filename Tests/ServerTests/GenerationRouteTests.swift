import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Model
import Server
import Service
import XCTest

/// The success shapes of the OpenAI routes, byte for byte, and what reaches the backend.
final class GenerationRouteTests: ServerTestCase {
    func testCompletionAnswersInOpenAIShapeNamingTheServedVersion() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"hello there world","max_tokens":2,"temperature":0}"#)
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "application/json")
            XCTAssertEqual(Self.normalized(String(buffer: r.body)),
                           #"{"id":"cmpl-ID","object":"text_completion","created":0,"model":"greet@2","choices":[{"index":0,"text":"HELLO THERE","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#)
        }
    }

    func testCompletionWithAListOfPromptsAnswersOneChoicePerPromptInOrder() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", #"{"model":"greet@1","prompt":["a b","c d e","f"],"temperature":0}"#)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            XCTAssertEqual(Self.normalized(String(buffer: r.body)),
                           #"{"id":"cmpl-ID","object":"text_completion","created":0,"model":"greet@1","choices":["#
                           + #"{"index":0,"text":"A B","logprobs":null,"finish_reason":"stop"},"#
                           + #"{"index":1,"text":"C D E","logprobs":null,"finish_reason":"stop"},"#
                           + #"{"index":2,"text":"F","logprobs":null,"finish_reason":"stop"}],"#
                           + #""usage":{"prompt_tokens":6,"completion_tokens":6,"total_tokens":12}}"#)
            XCTAssertEqual(self.backend.submitted.map(\.input), [.text("a b"), .text("c d e"), .text("f")])
        }
    }

    func testChatAnswersInOpenAIShape() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/chat/completions",
                                        #"{"model":"tiny-base","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"say hi now"}],"max_completion_tokens":5}"#)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            XCTAssertEqual(Self.normalized(String(buffer: r.body)),
                           #"{"id":"chatcmpl-ID","object":"chat.completion","created":0,"model":"tiny-base","choices":[{"index":0,"message":{"role":"assistant","content":"SAY HI NOW"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#)
            let sent = try XCTUnwrap(self.backend.submitted.first)
            XCTAssertEqual(sent.input, .chat([.init(role: "system", content: "be brief"), .init(role: "user", content: "say hi now")]))
            XCTAssertEqual(sent.maxTokens, 5)
        }
    }

    func testChatTakesTextPartsAndMaxTokensAndMapsDeveloperToSystem() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/chat/completions",
                                        #"{"model":"greet","messages":[{"role":"developer","content":[{"type":"text","text":"x"}]},{"role":"user","content":[{"type":"text","text":"one "},{"type":"text","text":"two"}]}],"max_tokens":1}"#)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            let sent = try XCTUnwrap(self.backend.submitted.first)
            XCTAssertEqual(sent.input, .chat([.init(role: "system", content: "x"), .init(role: "user", content: "one two")]))
            XCTAssertEqual(sent.maxTokens, 1)
            let choice = try XCTUnwrap((try self.object(r)["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(choice["finish_reason"] as? String, "length")
        }
    }

    func testSamplingStopAndRequestIdReachTheBackend() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions",
                                        #"{"model":"greet","prompt":"a b c","max_tokens":9,"temperature":0.7,"top_p":0.9,"top_k":40,"seed":-3,"stop":["B","zz"],"user":"u1"}"#,
                                        headers: [.init("X-Request-Id")!: "req-42"])
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            let sent = try XCTUnwrap(self.backend.submitted.first)
            XCTAssertEqual(sent.sampling, SamplingParameters(temperature: 0.7, topK: 40, topP: 0.9, seed: UInt64(bitPattern: -3)))
            XCTAssertEqual(sent.stop, ["B", "zz"])
            XCTAssertEqual(sent.maxTokens, 9)
            XCTAssertEqual(sent.requestId, "req-42")
            let choice = try XCTUnwrap((try self.object(r)["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(choice["text"] as? String, "A ")
            XCTAssertEqual(choice["finish_reason"] as? String, "stop")
        }
    }

    /// Our extension fields `speculate` and `lookup_ngram` reach the engine as sent (absent: nil, the
    /// server's `--speculate` default applies there), on both routes.
    func testSpeculationFieldsReachTheBackend() async throws {
        try await withServer { client in
            var r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a b c","speculate":5,"lookup_ngram":2,"lookup_min_ngram":1}"#)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            r = try await self.post(client, "/v1/chat/completions", #"{"model":"greet","messages":[{"role":"user","content":"a"}],"speculate":0}"#)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            r = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a"}"#)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            let sent = self.backend.submitted
            XCTAssertEqual(sent.count, 3)
            XCTAssertEqual(sent.map(\.speculate), [5, 0, nil])
            XCTAssertEqual(sent.map(\.lookupNgram), [2, nil, nil])
            XCTAssertEqual(sent.map(\.lookupMinNgram), [1, nil, nil])
        }
    }

    func testDefaultsFollowOpenAI() async throws {
        try await withServer { client in
            _ = try await self.post(client, "/v1/completions", #"{"model":"greet","prompt":"a","stop":"x"}"#)
            _ = try await self.post(client, "/v1/chat/completions", #"{"model":"greet","messages":[{"role":"user","content":"a"}],"top_k":-1}"#)
            let (completion, chat) = (self.backend.submitted[0], self.backend.submitted[1])
            XCTAssertEqual(completion.maxTokens, 16, "OpenAI's completions default")
            XCTAssertEqual(completion.sampling, SamplingParameters(temperature: 1))
            XCTAssertEqual(completion.stop, ["x"])
            XCTAssertNil(chat.maxTokens, "chat: as many as the context leaves")
            XCTAssertEqual(chat.sampling, SamplingParameters(temperature: 1))
        }
    }

    func testModelsListsTheBaseAndItsTasks() async throws {
        try await withServer { client in
            let r = try await client.execute(uri: "/v1/models", method: .get)
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(String(buffer: r.body),
                           #"{"object":"list","data":[{"id":"tiny-base","object":"model","created":1700000000,"owned_by":"lora","parent":null},{"id":"greet","object":"model","created":1700000100,"owned_by":"lora","parent":"tiny-base"}]}"#)
        }
    }
}
