import ChatTemplate
import Foundation
import TestSupport
import XCTest

/// Renders the committed chat templates of SmolLM2, Qwen2.5, Llama 3.1, Mistral and Zephyr (and one-construct
/// feature templates) and compares with what transformers' `render_jinja_template` produced
/// (scripts/fixtures/make_chat_template_fixtures.py).
final class ChatTemplateFixtureTests: XCTestCase {
    private func loadCases(_ name: String) throws -> [JinjaObject] {
        let text = try String(contentsOf: TestPaths.fixture("chat-templates/\(name)"), encoding: .utf8)
        guard case let .object(root) = try JinjaValue(json: text), case let .array(cases)? = root["cases"] else {
            throw XCTSkip("unreadable fixture \(name)")
        }
        return cases.compactMap { if case let .object(o) = $0 { return o } else { return nil } }
    }

    private func string(_ o: JinjaObject, _ key: String) -> String? {
        if case let .string(s)? = o[key] { return s }
        return nil
    }

    /// Renders every case; returns how many templates were involved.
    @discardableResult
    private func check(_ cases: [JinjaObject]) throws -> Int {
        var templates: [String: ChatTemplate] = [:]
        for c in cases {
            let path = string(c, "template")!
            if templates[path] == nil {
                templates[path] = try ChatTemplate(String(contentsOf: TestPaths.fixture("chat-templates/\(path)"), encoding: .utf8))
            }
            let label = "\(path) \(string(c, "conversation")!) add_generation_prompt=\(c["add_generation_prompt"]!)"
            guard case let .array(rawMessages)? = c["messages"] else { XCTFail("no messages in \(label)"); continue }
            // Plain role/content conversations go through [ChatMessage]; tool conversations as JSON values.
            let plain = rawMessages.allSatisfy { if case let .object(o) = $0 { return Set(o.keys) == ["role", "content"] } else { return false } }
            let messages = rawMessages.map { m -> ChatMessage in
                guard case let .object(o) = m else { return ChatMessage(role: "", content: "") }
                return ChatMessage(role: string(o, "role") ?? "", content: string(o, "content") ?? "")
            }
            let extra: [String: JinjaValue] = c["tools"].map { ["tools": $0] } ?? [:]
            let agp = c["add_generation_prompt"]!.truthy
            do {
                let template = templates[path]!
                let out = plain
                    ? try template.render(messages: messages, addGenerationPrompt: agp, bosToken: string(c, "bos_token"),
                                          eosToken: string(c, "eos_token"), extra: extra)
                    : try template.render(messages: .array(rawMessages), addGenerationPrompt: agp, bosToken: string(c, "bos_token"),
                                          eosToken: string(c, "eos_token"), extra: extra)
                if let expected = string(c, "expected") {
                    XCTAssertEqual(Array(out.utf8), Array(expected.utf8), "\(label)\n got: \(out.debugDescription)\nwant: \(expected.debugDescription)")
                } else {
                    XCTFail("\(label): expected the error \(string(c, "error") ?? "?"), got \(out.debugDescription)")
                }
            } catch let e as ChatTemplateError {
                guard let expectedError = string(c, "error") else { XCTFail("\(label): unexpected \(e)"); continue }
                let type = string(c, "error_type") ?? "TemplateError"
                if type == "UndefinedError" {
                    guard case let .runtime(message, _) = e else { XCTFail("\(label): expected an undefined error, got \(e)"); continue }
                    XCTAssertEqual(message, expectedError, label)
                } else if type != "TemplateError" {
                    // jinja2 raised a Python TypeError (e.g. str + dict): any evaluation error matches.
                    guard case .runtime = e else { XCTFail("\(label): expected a runtime error like \(type), got \(e)"); continue }
                } else {
                    guard case let .raised(message, _) = e else { XCTFail("\(label): expected raise_exception, got \(e)"); continue }
                    XCTAssertEqual(message, expectedError, label)
                }
            }
        }
        return templates.count
    }

    func testFamilyTemplatesRenderByteIdenticalToTransformers() throws {
        let cases = try loadCases("cases.json")
        XCTAssertGreaterThanOrEqual(cases.count, 96)
        XCTAssertEqual(try check(cases), 6, "SmolLM2, Qwen2.5, Llama 3.1, Mistral v0.1 and v0.3, Zephyr")
    }

    /// 36 more published templates (macros, call blocks, namespaces, tool schemas, raise_exception paths).
    func testMoreTemplatesRenderByteIdenticalToTransformers() throws {
        let cases = try loadCases("more-cases.json")
        XCTAssertGreaterThanOrEqual(cases.count, 200)
        XCTAssertEqual(try check(cases), 36)  // more-templates/index.json
    }

    func testFeatureTemplatesRenderLikeTransformers() throws {
        for c in try loadCases("features.json") {
            let name = string(c, "name")!
            var variables: [String: JinjaValue] = [:]
            if case let .object(v)? = c["variables"] { for (k, x) in v.pairs { variables[k] = x } }
            do {
                let template = try ChatTemplate(string(c, "template")!)
                let out = try template.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil, extra: variables)
                if let expected = string(c, "expected") {
                    XCTAssertEqual(out, expected, name)
                } else {
                    XCTFail("\(name): expected the error \(string(c, "error") ?? "?"), got \(out.debugDescription)")
                }
            } catch let e as ChatTemplateError {
                guard let expectedError = string(c, "error") else { XCTFail("\(name): unexpected \(e)"); continue }
                XCTAssertEqual(e.message, expectedError, name)
            }
        }
    }
}
