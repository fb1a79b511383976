import ChatTemplate
import Foundation
import XCTest

/// A parsed template's syntax tree is freed with the template, whatever the render did with it: a macro
/// closure stored in the scope it captured (a reference cycle, found by LeakSanitizer) kept every
/// macro body alive, with the `for` and `set` statements inside it, once per render. The counts are
/// process-wide, and XCTest runs one test at a time, so nothing else parses while a test measures.
final class ChatTemplateMemoryTests: XCTestCase {
    private let user = [ChatMessage(role: "user", content: "hi"), ChatMessage(role: "assistant", content: "hello")]

    /// Parses and renders `source` (each template in its own scope) and returns the render's output or error.
    private func renderAndDrop(_ source: String, extra: [String: JinjaValue] = [:], file: StaticString = #filePath,
                               line: UInt = #line) -> (Result<String, Error>, parsedExpressions: Int) {
        let before = ChatTemplateStatistics.liveExpressions
        var parsed = 0
        weak var weakTemplate: ChatTemplate?
        let result: Result<String, Error> = Result {
            let template = try ChatTemplate(source)
            weakTemplate = template
            parsed = ChatTemplateStatistics.liveExpressions - before
            return try template.render(messages: user, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>", extra: extra)
        }
        XCTAssertNil(weakTemplate, "the template outlived its last reference", file: file, line: line)
        XCTAssertEqual(ChatTemplateStatistics.liveExpressions, before,
                       "expression nodes still alive after the template and its render are gone", file: file, line: line)
        return (result, parsed)
    }

    func testMacroBodiesWithLoopsAndSetsAreFreedAfterRendering() throws {
        // The macro is stored in the root scope it captured; its body holds a for loop, a set and a set block.
        let source = """
            {% macro turn(m) %}{% for part in [m.role, m.content] %}{% set sep = ': ' if loop.first else '' %}\
            {{ part }}{{ sep }}{% endfor %}{% set tail %}{{ '.' }}{% endset %}{{ tail }}{% endmacro %}\
            {% for m in messages %}{{ turn(m) }}{% endfor %}
            """
        let (result, parsed) = renderAndDrop(source)
        XCTAssertEqual(try result.get(), "user: hi.assistant: hello.")
        XCTAssertGreaterThan(parsed, 10, "the template must have parsed expression nodes for this test to mean anything")
    }

    func testMacrosStoredInANamespaceAndCallBlocksAreFreed() throws {
        // Cycles through a namespace: root scope -> ns -> macro -> root scope; and a caller kept in ns.
        let source = """
            {% set ns = namespace(f=none, c=none) %}{% macro shout(x) %}{{ x | upper }}{{ caller() }}{% endmacro %}\
            {% macro keep() %}{% set ns.c = caller %}{% endmacro %}\
            {% set ns.f = shout %}{% call ns.f('a') %}!{% endcall %}{% call keep() %}?{% endcall %}{{ ns.c() }}
            """
        let (result, _) = renderAndDrop(source)
        XCTAssertEqual(try result.get(), "A!?")
    }

    func testARenderThatFailsInsideAMacroStillFreesTheTree() {
        let source = "{% macro boom(n) %}{% for i in range(n) %}{% if i == 2 %}{{ raise_exception('no ' ~ i) }}{% endif %}{% endfor %}"
            + "{% endmacro %}{{ boom(5) }}"
        let (result, _) = renderAndDrop(source)
        guard case let .failure(error) = result, case let ChatTemplateError.raised(message, _) = error else {
            return XCTFail("expected raise_exception's error, got \(result)")
        }
        XCTAssertEqual(message, "no 2")
    }

    func testATemplateThatFailsToParseLeavesNothingBehind() {
        let (result, _) = renderAndDrop("{% macro m() %}{% for x in y %}{{ x + }}{% endfor %}{% endmacro %}")
        guard case let .failure(error) = result, case ChatTemplateError.syntax = error else {
            return XCTFail("expected a syntax error, got \(result)")
        }
    }

    /// A macro stored in a namespace the caller passed in outlives the render; the scopes it captured were
    /// emptied (that is what breaks the cycles), so it still runs, seeing only its arguments.
    func testAMacroThatEscapesTheRenderStillRuns() throws {
        let ns = JinjaNamespace()
        let source = "{% set greeting = 'hello' %}{% macro m(x) %}{{ greeting }} {{ x }}{% endmacro %}{% set out.m = m %}{{ m('a') }}"
        let before = ChatTemplateStatistics.liveExpressions
        do {
            let rendered = try ChatTemplate(source).render(messages: user, addGenerationPrompt: false, bosToken: nil, eosToken: nil,
                                                           extra: ["out": .namespace(ns)])
            XCTAssertEqual(rendered, "hello a")
            guard case let .function(f)? = ns.attributes["m"] else { return XCTFail("the macro was not stored") }
            XCTAssertEqual(try f.call(["b"], []), .string(" b"))
        }
        // The namespace holds the macro, and the macro its body: freed with the namespace.
        ns.attributes = JinjaObject()
        XCTAssertEqual(ChatTemplateStatistics.liveExpressions, before)
    }

    func testParsesCountsEveryParse() throws {
        let before = ChatTemplateStatistics.parses
        _ = try ChatTemplate("{{ 1 }}")
        XCTAssertThrowsError(try ChatTemplate("{{ 1 "))
        XCTAssertEqual(ChatTemplateStatistics.parses, before + 2)
    }
}
