import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Server
import Service
import XCTest

/// Every bad input is a 400 in OpenAI's shape naming the field; nothing unsupported is ignored.
final class ValidationTests: ServerTestCase {
    static let completion = #""model":"greet","prompt":"a""#
    static let chat = #""model":"greet","messages":[{"role":"user","content":"a"}]"#

    /// Parameters this server does not implement, each with a value that would change the answer.
    static let unsupported: [(route: String, field: String, value: String)] = [
        ("/v1/completions", "n", "2"), ("/v1/chat/completions", "n", "3"),
        ("/v1/completions", "logprobs", "1"), ("/v1/chat/completions", "logprobs", "true"),
        ("/v1/chat/completions", "top_logprobs", "2"),
        ("/v1/completions", "echo", "true"), ("/v1/completions", "best_of", "2"),
        ("/v1/completions", "suffix", #""end""#),
        ("/v1/completions", "presence_penalty", "0.5"), ("/v1/chat/completions", "frequency_penalty", "-1"),
        ("/v1/completions", "repetition_penalty", "1.2"),
        ("/v1/chat/completions", "logit_bias", #"{"50256":-100}"#),
        ("/v1/chat/completions", "tools", #"[{"type":"function","function":{"name":"f"}}]"#),
        ("/v1/chat/completions", "tool_choice", #""auto""#),
        ("/v1/chat/completions", "functions", #"[{"name":"f"}]"#),
        ("/v1/chat/completions", "response_format", #"{"type":"json_object"}"#),
        ("/v1/chat/completions", "modalities", #"["text","audio"]"#),
        ("/v1/chat/completions", "store", "true"), ("/v1/completions", "metadata", #"{"a":"b"}"#),
        ("/v1/chat/completions", "service_tier", #""flex""#),
    ]

    func testEachUnsupportedParameterIs400NamingIt() async throws {
        try await withServer { client in
            for (route, field, value) in Self.unsupported {
                let base = route == "/v1/completions" ? Self.completion : Self.chat
                let r = try await self.post(client, route, "{\(base),\"\(field)\":\(value)}")
                try self.assertError(r, status: .badRequest, param: field, code: "unsupported_parameter", mentions: ["`\(field)`"])
            }
            XCTAssertTrue(self.backend.submitted.isEmpty, "nothing refused reaches the engine")
        }
    }

    func testNeutralValuesOfUnsupportedParametersAreAccepted() async throws {
        try await withServer { client in
            let r1 = try await self.post(client, "/v1/completions",
                                         "{\(Self.completion),\"n\":1,\"echo\":false,\"best_of\":1,\"logprobs\":null,\"presence_penalty\":0,\"frequency_penalty\":0.0,\"logit_bias\":{},\"suffix\":null}")
            XCTAssertEqual(r1.status, .ok, String(buffer: r1.body))
            let r2 = try await self.post(client, "/v1/chat/completions",
                                         "{\(Self.chat),\"n\":1,\"logprobs\":false,\"tools\":[],\"tool_choice\":\"none\",\"response_format\":{\"type\":\"text\"},\"parallel_tool_calls\":true,\"store\":false}")
            XCTAssertEqual(r2.status, .ok, String(buffer: r2.body))
        }
    }

    /// (route, body, the field the error names)
    static let wrongTypes: [(String, String, String)] = [
        ("/v1/completions", #"{"prompt":"a"}"#, "model"),
        ("/v1/completions", #"{"model":7,"prompt":"a"}"#, "model"),
        ("/v1/completions", #"{"model":"greet"}"#, "prompt"),
        ("/v1/completions", #"{"model":"greet","prompt":5}"#, "prompt"),
        ("/v1/completions", #"{"model":"greet","prompt":[]}"#, "prompt"),
        ("/v1/completions", #"{"model":"greet","prompt":["a",3]}"#, "prompt[1]"),
        ("/v1/completions", #"{"model":"greet","prompt":[1,2,3]}"#, "prompt"),
        ("/v1/completions", "{\(completion),\"max_tokens\":\"5\"}", "max_tokens"),
        ("/v1/completions", "{\(completion),\"max_tokens\":0}", "max_tokens"),
        ("/v1/completions", "{\(completion),\"max_tokens\":2.5}", "max_tokens"),
        ("/v1/completions", "{\(completion),\"temperature\":3}", "temperature"),
        ("/v1/completions", "{\(completion),\"temperature\":\"hot\"}", "temperature"),
        ("/v1/completions", "{\(completion),\"top_p\":0}", "top_p"),
        ("/v1/completions", "{\(completion),\"top_k\":-2}", "top_k"),
        ("/v1/completions", "{\(completion),\"seed\":1.5}", "seed"),
        ("/v1/completions", "{\(completion),\"stop\":7}", "stop"),
        ("/v1/completions", "{\(completion),\"stop\":[\"\"]}", "stop"),
        ("/v1/completions", "{\(completion),\"stream\":\"yes\"}", "stream"),
        ("/v1/completions", "{\(completion),\"stream_options\":{\"include_usage\":true}}", "stream_options"),
        ("/v1/completions", "{\(completion),\"stream\":true,\"stream_options\":{\"include_usage\":1}}", "stream_options.include_usage"),
        ("/v1/completions", "{\(completion),\"stream\":true,\"stream_options\":{\"other\":1}}", "stream_options.other"),
        ("/v1/completions", "{\(completion),\"frobnicate\":1}", "frobnicate"),
        ("/v1/completions", "{\(completion),\"speculate\":17}", "speculate"),
        ("/v1/completions", "{\(completion),\"speculate\":-1}", "speculate"),
        ("/v1/completions", "{\(completion),\"speculate\":\"4\"}", "speculate"),
        ("/v1/completions", "{\(completion),\"lookup_ngram\":0}", "lookup_ngram"),
        ("/v1/chat/completions", "{\(chat),\"speculate\":2.5}", "speculate"),
        ("/v1/chat/completions", "{\(chat),\"lookup_ngram\":17}", "lookup_ngram"),
        ("/v1/completions", "{\(completion),\"lookup_min_ngram\":0}", "lookup_min_ngram"),
        ("/v1/chat/completions", "{\(chat),\"lookup_min_ngram\":\"2\"}", "lookup_min_ngram"),
        ("/v1/completions", "{\(completion),\"ignore_eos\":1}", "ignore_eos"),
        ("/v1/chat/completions", "{\(chat),\"ignore_eos\":\"true\"}", "ignore_eos"),
        ("/v1/chat/completions", #"{"model":"greet"}"#, "messages"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[]}"#, "messages"),
        ("/v1/chat/completions", #"{"model":"greet","messages":["hi"]}"#, "messages[0]"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[{"content":"a"}]}"#, "messages[0].role"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[{"role":"tool","content":"a"}]}"#, "messages[0].role"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[{"role":"user"}]}"#, "messages[0].content"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[{"role":"user","content":7}]}"#, "messages[0].content"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#, "messages[0].content[0].type"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[{"role":"user","content":"a","name":"bob"}]}"#, "messages[0].name"),
        ("/v1/chat/completions", #"{"model":"greet","messages":[{"role":"user","content":"a","extra":1}]}"#, "messages[0].extra"),
        ("/v1/chat/completions", "{\(chat),\"max_tokens\":3,\"max_completion_tokens\":4}", "max_completion_tokens"),
        ("/v1/chat/completions", "{\(chat),\"max_completion_tokens\":-1}", "max_completion_tokens"),
    ]

    func testWrongTypesAndValuesAre400NamingTheField() async throws {
        try await withServer { client in
            for (route, body, field) in Self.wrongTypes {
                let r = try await self.post(client, route, body)
                try self.assertError(r, status: .badRequest, param: field, mentions: [field])
            }
            XCTAssertTrue(self.backend.submitted.isEmpty)
        }
    }

    func testMalformedJSONIs400() async throws {
        try await withServer { client in
            for body in [#"{"model":"greet","#, "not json", "", #"["model"]"#] {
                let r = try await self.post(client, "/v1/completions", body)
                try self.assertError(r, status: .badRequest, param: nil)
            }
        }
    }

    func testContextOverflowFromTheEngineIs400NamingMaxTokens() async throws {
        try await withServer { client in
            let r = try await self.post(client, "/v1/completions", "{\(Self.completion),\"max_tokens\":1000}")
            try self.assertError(r, status: .badRequest, param: "max_tokens", code: "context_length_exceeded", mentions: ["64"])
        }
    }

    func testContextOverflowNamesMaxCompletionTokensWhenTheClientSentIt() async throws {
        try await withServer { client in
            let body = #"{"model":"greet","messages":[{"role":"user","content":"a b"}],"max_completion_tokens":1000}"#
            let r = try await self.post(client, "/v1/chat/completions", body)
            try self.assertError(r, status: .badRequest, param: "max_completion_tokens", code: "context_length_exceeded",
                                 mentions: ["64", "`max_completion_tokens`"])
            let legacy = try await self.post(client, "/v1/chat/completions",
                                             #"{"model":"greet","messages":[{"role":"user","content":"a b"}],"max_tokens":1000}"#)
            try self.assertError(legacy, status: .badRequest, param: "max_tokens", code: "context_length_exceeded", mentions: ["`max_tokens`"])
        }
    }

    func testUnknownModelIs404ModelNotFound() async throws {
        try await withServer { client in
            for model in ["nope", "greet@9"] {
                let r = try await self.post(client, "/v1/chat/completions", #"{"model":"\#(model)","messages":[{"role":"user","content":"a"}]}"#)
                try self.assertError(r, status: .notFound, param: "model", code: "model_not_found", mentions: [model])
            }
        }
    }

    func testUnknownRouteIs404InOpenAIShape() async throws {
        try await withServer { client in
            let r = try await client.execute(uri: "/v1/embeddings", method: .post, body: ByteBuffer(string: "{}"))
            try self.assertError(r, status: .notFound, param: nil, code: "unknown_url", mentions: ["/v1/embeddings"])
        }
    }
}
