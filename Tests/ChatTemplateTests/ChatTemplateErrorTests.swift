import ChatTemplate
import Foundation
import TestSupport
import XCTest

/// Invalid and unsupported templates fail with the template's line and column; `raise_exception` carries its message.
final class ChatTemplateErrorTests: XCTestCase {
    private func parseError(_ source: String, file: StaticString = #filePath, line: UInt = #line) -> ChatTemplateError? {
        do {
            _ = try ChatTemplate(source)
            XCTFail("expected a parse error for \(source.debugDescription)", file: file, line: line)
            return nil
        } catch let e as ChatTemplateError {
            return e
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    private func renderError(_ source: String, _ messages: [ChatMessage] = [], extra: [String: JinjaValue] = [:],
                             file: StaticString = #filePath, line: UInt = #line) -> ChatTemplateError? {
        do {
            let out = try ChatTemplate(source).render(messages: messages, addGenerationPrompt: false, bosToken: "<s>",
                                                      eosToken: "</s>", extra: extra)
            XCTFail("expected a render error, got \(out.debugDescription)", file: file, line: line)
            return nil
        } catch let e as ChatTemplateError {
            return e
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    func testIncludeIsUnsupportedAndNamesItsLineAndColumn() {
        let e = parseError("{% for m in messages %}\n{{ m.content }}\n  {% include 'other.jinja' %}\n{% endfor %}")
        guard case let .unsupported(message, location)? = e else { return XCTFail("got \(String(describing: e))") }
        XCTAssertTrue(message.contains("include"), message)
        XCTAssertEqual(location, SourceLocation(line: 3, column: 6))
        XCTAssertTrue(e!.description.contains("line 3"), e!.description)
    }

    func testUnknownFilterAndTestAreUnsupportedAtTheirLine() {
        guard case let .unsupported(m1, l1)? = parseError("a\nb {{ x | wordwrap(3) }}") else { return XCTFail() }
        XCTAssertTrue(m1.contains("wordwrap"), m1)
        XCTAssertEqual(l1, SourceLocation(line: 2, column: 10))
        guard case let .unsupported(m2, l2)? = parseError("{% if x is prime %}{% endif %}") else { return XCTFail() }
        XCTAssertTrue(m2.contains("prime"), m2)
        XCTAssertEqual(l2.line, 1)
    }

    func testRawBlocksCallerArgumentsAndRecursiveLoopsAreUnsupported() {
        for source in ["x\n{% raw %}{{ }}{% endraw %}", "{% call(a) foo() %}x{% endcall %}", "{{ f(**kw) }}",
                       "\n\n{% for x in y recursive %}{% endfor %}"] {
            guard case .unsupported? = parseError(source) else { return XCTFail("\(source.debugDescription) should be unsupported") }
        }
        guard case let .unsupported(_, l)? = parseError("\n\n{% for x in y recursive %}{% endfor %}") else { return XCTFail() }
        XCTAssertEqual(l.line, 3)
    }

    func testSyntaxErrorsNameTheirLine() {
        guard case let .syntax(m1, l1)? = parseError("ok\n{% if x %}never closed") else { return XCTFail() }
        XCTAssertTrue(m1.contains("never closed"), m1)
        XCTAssertEqual(l1, SourceLocation(line: 2, column: 4))
        guard case let .syntax(_, l2)? = parseError("a\nb\n{{ 'unterminated }}") else { return XCTFail() }
        XCTAssertEqual(l2.line, 3)
        guard case let .syntax(m3, l3)? = parseError("{% endfor %}") else { return XCTFail() }
        XCTAssertTrue(m3.contains("endfor"), m3)
        XCTAssertEqual(l3.line, 1)
        guard case .syntax? = parseError("{{ 1 + }}") else { return XCTFail() }
        guard case .syntax? = parseError("{{ x ") else { return XCTFail() }
    }

    func testMistralRaisesItsMessageWhenRolesDoNotAlternate() throws {
        let source = try String(contentsOf: TestPaths.fixture("chat-templates/templates/mistral-v0.1.jinja"), encoding: .utf8)
        let e = renderError(source, [ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b")])
        guard case let .raised(message, location)? = e else { return XCTFail("got \(String(describing: e))") }
        XCTAssertEqual(message, "Conversation roles must alternate user/assistant/user/assistant/...")
        XCTAssertEqual(location.line, 1)
        let system = renderError(source, [ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "u")])
        XCTAssertEqual(system?.message, "Conversation roles must alternate user/assistant/user/assistant/...")
    }

    func testAttributeOfAnUndefinedNameIsAnErrorAtItsLine() {
        guard case let .runtime(message, location)? = renderError("x\n\n{{ nothing.role }}") else { return XCTFail() }
        XCTAssertTrue(message.contains("nothing"), message)
        XCTAssertEqual(location.line, 3)
    }

    func testTypeErrorsAndDivisionByZeroAreRuntimeErrors() {
        guard case .runtime? = renderError("{{ 'a' + 1 }}") else { return XCTFail() }
        guard case .runtime? = renderError("{{ 1 // 0 }}") else { return XCTFail() }
        guard case .runtime? = renderError("{% for x in 3 %}{% endfor %}") else { return XCTFail() }
        guard case .runtime? = renderError("{{ x | tojson }}") else { return XCTFail() }
        guard case .runtime? = renderError("{% set s = 'a' %}{% set s.x = 1 %}") else { return XCTFail() }
    }
}
