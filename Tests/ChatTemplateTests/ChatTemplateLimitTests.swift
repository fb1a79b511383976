import ChatTemplate
import Foundation
import XCTest

/// Hostile templates (a base model's chat template is code from whoever published it) fail with a
/// `limitExceeded` error naming the limit and a template location: never a stack overflow, a hang, or
/// gigabytes allocated. Every check runs on a 512 KB thread stack, smaller than any thread that renders.
final class ChatTemplateLimitTests: XCTestCase {
    /// Runs `body` on a thread with a 512 KB stack (Dispatch's worker size on some platforms), so a
    /// depth limit too large for small stacks crashes the test instead of passing on the 8 MB main thread.
    private func onSmallStack<T>(bytes: Int = 512 << 10, _ body: @escaping () -> T) -> T {
        var result: T?
        let done = DispatchSemaphore(value: 0)
        let thread = Thread { result = body(); done.signal() }
        thread.stackSize = bytes
        thread.start()
        done.wait()
        return result!
    }

    private func limitError(_ source: String, file: StaticString = #filePath, line: UInt = #line) -> (String, SourceLocation)? {
        let outcome: Result<String, Error> = onSmallStack {
            Result { try ChatTemplate(source).render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true,
                                                     bosToken: "<s>", eosToken: "</s>") }
        }
        switch outcome {
        case let .success(out):
            XCTFail("expected a limit error, rendered \(out.utf8.count) bytes", file: file, line: line)
        case let .failure(error):
            if case let ChatTemplateError.limitExceeded(message, location) = error { return (message, location) }
            XCTFail("expected limitExceeded, got \(error)", file: file, line: line)
        }
        return nil
    }

    func testDeeplyNestedParenthesesAreAParseLimitErrorWithLocation() {
        let e = limitError("{{ " + String(repeating: "(", count: 20_000) + "1" + String(repeating: ")", count: 20_000) + " }}")
        XCTAssertTrue(e?.0.contains("JinjaLimits.maxParseDepth") ?? false, "\(String(describing: e))")
        // At the '(' one past the limit (the outermost expression starts at column 4).
        XCTAssertEqual(e?.1, SourceLocation(line: 1, column: 4 + JinjaLimits.maxParseDepth))
    }

    func testDeeplyNestedIfBlocksListsNotAndUnaryChainsAreParseLimitErrors() {
        let deepIf = String(repeating: "{% if true %}\n", count: 20_000) + "x" + String(repeating: "{% endif %}", count: 20_000)
        let e = limitError(deepIf)
        XCTAssertTrue(e?.0.contains("maxParseDepth") ?? false, "\(String(describing: e))")
        // Within the block that goes past the limit (its condition counts as one more level).
        XCTAssertTrue((JinjaLimits.maxParseDepth...JinjaLimits.maxParseDepth + 1).contains(e?.1.line ?? 0), "\(String(describing: e))")
        let n = 20_000
        for source in ["{{ " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + " }}",
                       "{{ " + String(repeating: "not ", count: n) + "x }}",
                       "{{ " + String(repeating: "-", count: n) + "1 }}",
                       "{{ " + String(repeating: "f(", count: n) + String(repeating: ")", count: n) + " }}",
                       "{{ " + String(repeating: "x[", count: n) + "0" + String(repeating: "]", count: n) + " }}",
                       "{{ x if " + String(repeating: "x if x else ", count: n) + "x }}"] {
            let e = limitError(source)
            XCTAssertTrue(e?.0.contains("maxParseDepth") ?? false, "\(source.prefix(12)): \(String(describing: e))")
        }
    }

    func testNestingRealTemplatesUseStillParses() throws {
        let depth = 20
        let source = String(repeating: "{% if true %}", count: depth) + "{{ " + String(repeating: "(", count: depth) + "1"
            + String(repeating: ")", count: depth) + " }}" + String(repeating: "{% endif %}", count: depth)
        XCTAssertEqual(try ChatTemplate(source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil), "1")
    }

    func testRecursiveMacroIsARenderDepthErrorNotAStackOverflow() {
        let e = limitError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}")
        XCTAssertTrue(e?.0.contains("JinjaLimits.maxRenderDepth") ?? false, "\(String(describing: e))")
        XCTAssertEqual(e?.1.line, 1)
        // Mutual recursion through a call block and caller() is bounded the same way.
        let m = limitError("{% macro g() %}{% call g() %}x{% endcall %}{{ caller() }}{% endmacro %}{{ g() }}")
        XCTAssertTrue(m?.0.contains("maxRenderDepth") ?? false, "\(String(describing: m))")
    }

    /// On a thread whose stack is too small for `maxRenderDepth` levels, the stack check stops evaluation first.
    func testRecursiveMacroOnATinyStackStopsAtTheStackReserve() {
        let outcome: Result<String, Error> = onSmallStack(bytes: JinjaLimits.stackReserveBytes + (64 << 10)) {
            Result { try ChatTemplate("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
                .render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil) }
        }
        guard case let .failure(ChatTemplateError.limitExceeded(message, _)) = outcome else { return XCTFail("got \(outcome)") }
        XCTAssertTrue(message.contains("stack"), message)
    }

    func testRecursiveMacrosOfRealDepthStillRender() throws {
        let source = "{% macro f(n) %}{% if n > 0 %}[{{ f(n - 1) }}]{% endif %}{% endmacro %}{{ f(10) }}"
        XCTAssertEqual(try ChatTemplate(source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil),
                       "[[[[[[[[[[]]]]]]]]]]")
    }

    /// No clock: that the render ends at all (with the step-budget error, long before 10^12 or 10^9
    /// iterations) is what shows it does not hang; how long it takes depends on the machine's load.
    func testNestedRangeLoopsRunOutOfStepsInsteadOfHanging() {
        let e = limitError("{% for i in range(1000000) %}\n{% for j in range(1000000) %}{% endfor %}{% endfor %}")
        XCTAssertTrue(e?.0.contains("JinjaLimits.maxSteps") ?? false, "\(String(describing: e))")
        XCTAssertEqual(e?.1.line, 2)
        // Small ranges, so only the loop iterations themselves count: 10^9 of them.
        let small = limitError("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}")
        XCTAssertTrue(small?.0.contains("JinjaLimits.maxSteps") ?? false, "\(String(describing: small))")
    }

    func testHugeRepetitionsFailBeforeAllocating() {
        for source in ["{{ 'x' * 10**10 }}", "{{ 'abc' * 9223372036854775807 }}", "{{ [1] * 10**9 }}", "{{ [1, 2] * 10**18 }}",
                       "{{ range(10**10) | length }}", "{{ range(-9223372036854775807 - 1, 9223372036854775807) | length }}"] {
            let e = limitError(source)
            XCTAssertTrue((e?.0.contains("maxStringBytes") ?? false) || (e?.0.contains("maxListLength") ?? false),
                          "\(source): \(String(describing: e))")
            XCTAssertEqual(e?.1.line, 1, source)
        }
    }

    func testStringGrowthThroughLoopsReplaceJoinIndentAndOutputIsCapped() {
        let big = "{% set s = 'x' * 1000000 %}"
        for source in [
            "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            big + "{{ s | replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}",
            big + "{{ s.replace('', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}",
            big + "{% set l = [" + String(repeating: "s, ", count: 100) + "] %}{{ l | join }}",
            big + "{% set l = [" + String(repeating: "s, ", count: 100) + "] %}{{ ''.join(l) }}",
            big + "{% set l = [" + String(repeating: "s, ", count: 100) + "] %}{{ l }}",
            big + "{% set l = [" + String(repeating: "s, ", count: 100) + "] %}{{ l | tojson }}",
            "{{ ('x\\n' * 100000) | indent(1000) }}",
            "{{ 'a\\nb' | indent(10**12) }}",
            big + "{% for i in range(100) %}{{ s }}{% endfor %}",
            big + "{{ ('{s}' * 100).format(s=s) }}",
        ] {
            let e = limitError(source)
            // Doubling a string charges its bytes to the step budget too, which may run out first.
            XCTAssertTrue(e?.0.contains("JinjaLimits.maxStringBytes") ?? false
                || (source.contains("ns.s + ns.s") && e?.0.contains("JinjaLimits.maxSteps") ?? false),
                          "\(source.suffix(40)): \(String(describing: e))")
        }
    }

    func testDeeplyNestedValuesAndNamespaceCyclesAreLimitErrors() {
        for source in [
            "{% set ns = namespace(x=1) %}{% for i in range(10000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
            "{% set ns = namespace(x=1) %}{% for i in range(10000) %}{% set ns.x = {'a': ns.x} %}{% endfor %}{{ ns.x | tojson }}",
            "{% set ns = namespace(x=1) %}{% for i in range(10000) %}{% set ns.x = namespace(a=ns.x) %}{% endfor %}{{ ns.x }}",
            "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}",
        ] {
            let e = limitError(source)
            XCTAssertTrue(e?.0.contains("JinjaLimits.maxValueDepth") ?? false, "\(source.suffix(40)): \(String(describing: e))")
        }
    }

    func testHugeExponentsOfOneAreInstant() throws {
        let source = "{{ 1 ** 9223372036854775807 }} {{ (-1) ** 9223372036854775807 }} {{ 2 ** 62 }}"
        XCTAssertEqual(try ChatTemplate(source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil),
                       "1 -1 4611686018427387904")
    }
}
