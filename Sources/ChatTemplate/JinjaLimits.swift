import Foundation

/// Budgets that keep a hostile chat template (a base model's `tokenizer.chat_template` is code from
/// whoever published the model) from crashing, hanging or exhausting memory. Exceeding one is a
/// `ChatTemplateError.limitExceeded` naming the limit and the template location.
///
/// Real chat templates are far below every limit: the largest templates in transformers' and
/// llama.cpp's test suites nest blocks about 6 deep and expressions about 5, render a conversation
/// with a few thousand evaluation steps per message, recurse through macros (JSON-schema renderers
/// in tool-calling templates) fewer than 10 levels, and produce at most a few MB of text for the
/// longest contexts (1M tokens is about 4 MB).
public enum JinjaLimits {
    /// Nesting of blocks ({% if %}, {% for %}, {% macro %}...) plus expression nesting (parentheses,
    /// lists, calls, unary operators) while parsing. Each level costs about 15 recursive-descent
    /// frames, so 100 levels stay well inside a 512 KB thread stack.
    public static let maxParseDepth = 100

    /// Nested evaluation while rendering: statements, expressions and macro calls (each macro call
    /// adds the depth of its body). Bounds recursive macros; a few hundred frames of a few hundred
    /// bytes each stays far from any thread's stack size.
    public static let maxRenderDepth = 300

    /// Stack kept free below the deepest evaluation frame: whatever the thread's stack size, evaluation
    /// stops while this much is left for a builtin's own recursion (printing or JSON-encoding a value
    /// at most `maxValueDepth` deep takes a few tens of KB).
    public static let stackReserveBytes = 128 << 10

    /// Work units for one render: one per expression evaluated, statement executed and loop
    /// iteration, plus one per list element and per 64 bytes of string a builtin creates. Two
    /// million take a few seconds on a slow shared core; a real template uses a few hundred per message.
    public static let maxSteps = 2_000_000

    /// Nesting of lists, dicts and namespaces a template may build (JSON tool schemas nest about 10);
    /// also what makes `{% set ns.me = ns %}` (a cycle) an error instead of endless printing.
    public static let maxValueDepth = 64

    /// Largest string a template may build (a value or the rendered output), in UTF-8 bytes:
    /// 16 times the longest real context's text, and cheap to hold.
    public static let maxStringBytes = 64 << 20

    /// Largest list a template may build, in elements (range(), list repetition, concatenation).
    public static let maxListLength = 1_000_000

    static func tooLongString(_ bytes: Int, _ what: String) -> JinjaCallError {
        JinjaCallError(message: "\(what) would build a string of \(bytes) bytes, over the limit of \(maxStringBytes) bytes "
            + "(JinjaLimits.maxStringBytes)", limit: true)
    }

    static func tooLongList(_ count: Int, _ what: String) -> JinjaCallError {
        JinjaCallError(message: "\(what) would build a list of \(count) elements, over the limit of \(maxListLength) "
            + "(JinjaLimits.maxListLength)", limit: true)
    }

    /// Throws unless a string of `bytes` (nil: the size overflowed Int) is within the limit.
    static func checkString(_ bytes: Int?, _ what: String) throws {
        guard let bytes, bytes <= maxStringBytes else { throw tooLongString(bytes ?? Int.max, what) }
    }

    static func checkList(_ count: Int?, _ what: String) throws {
        guard let count, count <= maxListLength else { throw tooLongList(count ?? Int.max, what) }
    }

    /// `a * b` without overflow (nil when it overflows).
    static func product(_ a: Int, _ b: Int) -> Int? {
        let r = a.multipliedReportingOverflow(by: b)
        return r.overflow ? nil : r.partialValue
    }

    /// A lower bound on the UTF-8 size of `v.description` (or its JSON), walked only until it passes
    /// `maxStringBytes`, so a list holding a million references to one large string is measured
    /// without building its text.
    static func textSize(_ v: JinjaValue, _ limit: Int = maxStringBytes) -> Int {
        var total = 0
        func walk(_ v: JinjaValue) {
            if total > limit { return }
            switch v {
            case let .string(s): total += s.utf8.count + 2
            case let .array(a), let .tuple(a):
                total += 2
                for x in a { walk(x); total += 2; if total > limit { return } }
            case let .object(o):
                total += 2
                for (k, x) in o.pairs { total += k.utf8.count + 4; walk(x); if total > limit { return } }
            case let .namespace(ns):
                total += 2
                for (k, x) in ns.attributes.pairs { total += k.utf8.count + 4; walk(x); if total > limit { return } }
            default: total += 4
            }
        }
        walk(v)
        return total
    }

    /// Throws when `v` nests lists, dicts and namespaces deeper than `maxValueDepth` (or holds a cycle
    /// through a namespace); returns the number of values visited, for the step budget.
    @discardableResult
    static func checkDepth(_ v: JinjaValue, _ what: String) throws -> Int {
        var visited = 0
        func deeper(_ v: JinjaValue, _ depth: Int) -> Bool {
            visited += 1
            switch v {
            case let .array(a), let .tuple(a):
                if depth >= maxValueDepth { return true }
                return a.contains { deeper($0, depth + 1) }
            case let .object(o):
                if depth >= maxValueDepth { return true }
                return o.pairs.contains { deeper($0.1, depth + 1) }
            case let .namespace(ns):
                if depth >= maxValueDepth { return true }
                return ns.attributes.pairs.contains { deeper($0.1, depth + 1) }
            default:
                return false
            }
        }
        if deeper(v, 0) {
            throw JinjaCallError(message: "\(what) would nest lists, dicts or namespaces deeper than \(maxValueDepth) levels "
                + "(JinjaLimits.maxValueDepth), or make a namespace contain itself", limit: true)
        }
        return visited
    }

    /// Throws when joining `items` with `separator` would exceed `maxStringBytes`.
    static func checkJoin(_ items: [JinjaValue], separator: String) throws {
        var total = 0
        for item in items {
            total += textSize(item) + separator.utf8.count
            if total > maxStringBytes { throw tooLongString(total, "join") }
        }
    }

    /// Throws when the text of `v` (description or JSON) would exceed `maxStringBytes`.
    static func checkText(_ v: JinjaValue, _ what: String) throws {
        if case let .string(s) = v { return try checkString(s.utf8.count, what) }
        let size = textSize(v)
        if size > maxStringBytes { throw tooLongString(size, what) }
    }
}

/// The running budget of one render (steps and depth); the interpreter owns one per render.
struct JinjaBudget {
    private(set) var steps = 0
    private(set) var depth = 0
    /// The lowest stack address evaluation may reach on the rendering thread (0: unknown, unchecked).
    private let stackFloor: UInt = JinjaBudget.stackFloor()

    /// The current thread's stack bottom plus `JinjaLimits.stackReserveBytes`.
    private static func stackFloor() -> UInt {
        #if os(Linux)
        var attr = pthread_attr_t()
        guard glibcPthreadGetattrNP(pthread_self(), &attr) == 0 else { return 0 }
        defer { pthread_attr_destroy(&attr) }
        var bottom: UnsafeMutableRawPointer?
        var size = 0
        guard pthread_attr_getstack(&attr, &bottom, &size) == 0, let bottom else { return 0 }
        return UInt(bitPattern: bottom) + UInt(JinjaLimits.stackReserveBytes)
        #else
        return 0
        #endif
    }

    /// Whether the stack (which grows down) has reached the floor.
    func stackExhausted() -> Bool {
        var marker: UInt8 = 0
        return withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) } < stackFloor
    }

    mutating func charge(_ n: Int) -> Bool {
        steps += n
        return steps <= JinjaLimits.maxSteps
    }

    mutating func enter() -> Bool {
        depth += 1
        return depth <= JinjaLimits.maxRenderDepth && !stackExhausted()
    }

    mutating func leave() { depth -= 1 }
}

#if os(Linux)
/// glibc's `pthread_getattr_np` (a GNU extension the Glibc module does not export): the attributes,
/// including the stack bounds, of a running thread.
@_silgen_name("pthread_getattr_np")
private func glibcPthreadGetattrNP(_ thread: pthread_t, _ attr: UnsafeMutablePointer<pthread_attr_t>) -> Int32
#endif
