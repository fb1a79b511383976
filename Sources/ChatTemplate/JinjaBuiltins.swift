import Foundation

/// Global functions a chat template can call: jinja2's defaults (`range`, `dict`, `namespace`) and
/// the ones transformers adds (`raise_exception`, `strftime_now`; chat_template_utils.py).
enum JinjaBuiltins {
    static let globals: [String: JinjaValue] = [
        "raise_exception": .function(JinjaFunction(name: "raise_exception") { args, _ in
            throw JinjaCallError(message: args.first?.description ?? "", raised: true)
        }),
        "namespace": .function(JinjaFunction(name: "namespace") { args, kwargs in
            var o = JinjaObject()
            for a in args {
                guard case let .object(d) = a else { throw JinjaCallError(message: "namespace() takes a dict or keyword arguments") }
                for (k, v) in d.pairs { o[k] = v }
            }
            for (k, v) in kwargs { o[k] = v }
            try JinjaLimits.checkDepth(.object(o), "namespace()")
            return .namespace(JinjaNamespace(o))
        }),
        "dict": .function(JinjaFunction(name: "dict") { args, kwargs in
            var o = JinjaObject()
            for a in args {
                guard case let .object(d) = a else { throw JinjaCallError(message: "dict() takes a dict or keyword arguments") }
                for (k, v) in d.pairs { o[k] = v }
            }
            for (k, v) in kwargs { o[k] = v }
            try JinjaLimits.checkDepth(.object(o), "dict()")
            return .object(o)
        }),
        "range": .function(JinjaFunction(name: "range") { args, _ in
            let ints = args.compactMap(\.integer)
            guard ints.count == args.count, (1...3).contains(ints.count) else {
                throw JinjaCallError(message: "range() takes 1 to 3 integer arguments")
            }
            let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            if step == 0 { throw JinjaCallError(message: "range() arg 3 must not be zero") }
            // Counted in overflow-checked arithmetic before any element is made (range(-2**63, 2**63-1) too).
            let span = stop.subtractingReportingOverflow(start)
            let count = span.overflow ? nil : span.partialValue.dividedReportingOverflow(by: step)
            try JinjaLimits.checkList(count.flatMap { $0.overflow || $0.partialValue == Int.min ? nil : abs($0.partialValue) }, "range()")
            return .array(stride(from: start, to: stop, by: step).map { .int($0) })
        }),
        "strftime_now": .function(JinjaFunction(name: "strftime_now") { args, _ in
            guard case let .string(format)? = args.first else { throw JinjaCallError(message: "strftime_now() takes a format string") }
            var now = time(nil)
            var parts = tm()
            localtime_r(&now, &parts)
            var buffer = [Int8](repeating: 0, count: 256)
            let n = strftime(&buffer, buffer.count, format, &parts)
            return .string(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }),
    ]
}

/// Jinja tests (`x is name`), with jinja2/tests.py semantics.
enum JinjaTests {
    static let names: Set<String> = [
        "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false", "mapping",
        "iterable", "sequence", "callable", "even", "odd", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "<",
        "le", "<=", "gt", ">", "ge", ">=", "in", "lower", "upper", "sameas", "escaped",
    ]

    static func apply(_ name: String, _ v: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        func arg() throws -> JinjaValue {
            guard let a = args.first else { throw JinjaCallError(message: "test '\(name)' needs an argument") }
            return a
        }
        let here = SourceLocation(line: 0, column: 0)
        func cmp(_ op: String) throws -> Bool {
            do { return try JinjaOperators.compare(op, v, try arg(), here) } catch let e as ChatTemplateError {
                throw JinjaCallError(message: e.message)
            }
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNone
        case "string": if case .string = v { return true }; return false
        case "number": switch v { case .int, .double, .bool: return true; default: return false }  // bool is a Number in Python
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "mapping": if case .object = v { return true }; return false
        case "iterable":
            switch v { case .string, .array, .tuple, .object, .undefined: return true; default: return false }
        case "sequence":
            switch v { case .string, .array, .tuple, .object: return true; default: return false }
        case "callable": if case .function = v { return true }; return false
        case "even", "odd":
            guard let i = v.integer else { throw JinjaCallError(message: "test '\(name)' needs an integer, got \(v.typeName)") }
            return (i % 2 == 0) == (name == "even")
        case "divisibleby":
            guard let i = v.integer, let j = try arg().integer, j != 0 else { throw JinjaCallError(message: "divisibleby needs non-zero integers") }
            return i % j == 0
        case "eq", "equalto", "==": return try cmp("==")
        case "ne", "!=": return try cmp("!=")
        case "lt", "<": return try cmp("<")
        case "le", "<=": return try cmp("<=")
        case "gt", ">": return try cmp(">")
        case "ge", ">=": return try cmp(">=")
        case "in": return try cmp("in")
        case "lower": if case let .string(s) = v { return s == s.lowercased() }; return false
        case "upper": if case let .string(s) = v { return s == s.uppercased() }; return false
        case "sameas":
            let other = try arg()
            switch (v, other) {
            case (.none, .none), (.undefined, .undefined): return true
            case let (.bool(x), .bool(y)): return x == y
            case let (.namespace(x), .namespace(y)): return x === y
            default: return false
            }
        case "escaped": return false
        default: throw JinjaCallError(message: "unknown test '\(name)'")
        }
    }
}
