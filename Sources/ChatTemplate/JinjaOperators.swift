import Foundation

/// Python semantics of Jinja's operators, attribute access, subscripts and slices.
enum JinjaOperators {
    static func undefinedError(_ v: JinjaValue, _ location: SourceLocation) -> ChatTemplateError? {
        if case let .undefined(message) = v { return .runtime(message, location) }
        return nil
    }

    static func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue, _ location: SourceLocation) throws -> JinjaValue {
        if op == "~" {
            let size = JinjaLimits.textSize(a) + JinjaLimits.textSize(b)
            try JinjaLimits.checkString(size > JinjaLimits.maxStringBytes ? size : 0, "'~'")
            return .string(a.description + b.description)
        }
        if let e = undefinedError(a, location) ?? undefinedError(b, location) { throw e }
        func typeError() -> ChatTemplateError {
            .runtime("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'", location)
        }
        switch op {
        case "+":
            switch (a, b) {
            case let (.string(x), .string(y)):
                try JinjaLimits.checkString(x.utf8.count + y.utf8.count, "'+'")
                return .string(x + y)
            case let (.array(x), .array(y)):
                try JinjaLimits.checkList(x.count + y.count, "'+'")
                return .array(x + y)
            case let (.tuple(x), .tuple(y)):
                try JinjaLimits.checkList(x.count + y.count, "'+'")
                return .tuple(x + y)
            default: return try arithmetic(op, a, b, location, typeError)
            }
        case "*":
            // Checked before allocating: `'x' * 10**10` must fail at once, not after reserving gigabytes.
            if case let .string(s) = a, let n = b.integer {
                try JinjaLimits.checkString(JinjaLimits.product(s.utf8.count, max(0, n)), "'*'")
                return .string(String(repeating: s, count: max(0, n)))
            }
            if case let .array(x) = a, let n = b.integer {
                try JinjaLimits.checkList(JinjaLimits.product(x.count, max(0, n)), "'*'")
                // Repeated references to large elements are still a large text once printed or joined.
                try JinjaLimits.checkString(JinjaLimits.product(JinjaLimits.textSize(a), max(0, n)), "'*'")
                return .array(Array(repeating: x, count: max(0, n)).flatMap { $0 })
            }
            return try arithmetic(op, a, b, location, typeError)
        case "%":
            if case .string = a { throw ChatTemplateError.unsupported("printf-style string formatting ('%' on a string)", location) }
            return try arithmetic(op, a, b, location, typeError)
        default:
            return try arithmetic(op, a, b, location, typeError)
        }
    }

    private static func arithmetic(_ op: String, _ a: JinjaValue, _ b: JinjaValue, _ location: SourceLocation,
                                   _ typeError: () -> ChatTemplateError) throws -> JinjaValue {
        guard let x = a.number, let y = b.number else { throw typeError() }
        let zero = ChatTemplateError.runtime("division by zero", location)
        if let i = a.integer, let j = b.integer {
            func checked(_ r: (Int, Bool)) throws -> JinjaValue {
                if r.1 { throw ChatTemplateError.unsupported("integer overflow in \(op)", location) }
                return .int(r.0)
            }
            switch op {
            case "+": return try checked(i.addingReportingOverflow(j))
            case "-": return try checked(i.subtractingReportingOverflow(j))
            case "*": return try checked(i.multipliedReportingOverflow(by: j))
            case "/":
                if j == 0 { throw zero }
                return .double(Double(i) / Double(j))
            case "//":
                if j == 0 { throw zero }
                let q = i / j
                return .int((i % j != 0 && (i < 0) != (j < 0)) ? q - 1 : q)
            case "%":
                if j == 0 { throw zero }
                let r = i % j
                return .int(r != 0 && (r < 0) != (j < 0) ? r + j : r)
            case "**":
                if j >= 0 {
                    // Exponentiation by squaring: at most 64 multiplications whatever `j` is (1 ** 10**18 is instant).
                    if i == 0 || i == 1 { return .int(j == 0 ? 1 : i) }
                    if i == -1 { return .int(j % 2 == 0 ? 1 : -1) }
                    var result = 1, base = i, e = j
                    while true {
                        if e & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: base)).integer! }
                        e >>= 1
                        if e == 0 { break }
                        base = try checked(base.multipliedReportingOverflow(by: base)).integer!
                    }
                    return .int(result)
                }
                return .double(pow(Double(i), Double(j)))
            default: throw typeError()
            }
        }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/":
            if y == 0 { throw zero }
            return .double(x / y)
        case "//":
            if y == 0 { throw zero }
            return .double((x / y).rounded(.down))
        case "%":
            if y == 0 { throw zero }
            let r = fmod(x, y)
            return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
        case "**": return .double(pow(x, y))
        default: throw typeError()
        }
    }

    static func compare(_ op: String, _ a: JinjaValue, _ b: JinjaValue, _ location: SourceLocation) throws -> Bool {
        switch op {
        case "==": return a == b
        case "!=": return a != b
        case "in": return try contains(b, a, location)
        case "notin": return !(try contains(b, a, location))
        default:
            guard let order = try ordering(a, b, op, location) else { return false }
            switch op {
            case "<": return order < 0
            case "<=": return order <= 0
            case ">": return order > 0
            default: return order >= 0
            }
        }
    }

    /// -1, 0, 1 as Python orders numbers, strings (by code point) and sequences.
    static func ordering(_ a: JinjaValue, _ b: JinjaValue, _ op: String, _ location: SourceLocation) throws -> Int? {
        if let x = a.number, let y = b.number { return x < y ? -1 : (x > y ? 1 : 0) }
        switch (a, b) {
        case let (.string(x), .string(y)):
            return lexicographic(Array(x.unicodeScalars.map(\.value)), Array(y.unicodeScalars.map(\.value)))
        case let (.array(x), .array(y)), let (.tuple(x), .tuple(y)):
            for (p, q) in zip(x, y) where p != q { return try ordering(p, q, op, location) }
            return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
        default:
            if let e = undefinedError(a, location) ?? undefinedError(b, location) { throw e }
            throw ChatTemplateError.runtime("'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'", location)
        }
    }

    private static func lexicographic(_ x: [UInt32], _ y: [UInt32]) -> Int {
        for (p, q) in zip(x, y) where p != q { return p < q ? -1 : 1 }
        return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
    }

    static func contains(_ container: JinjaValue, _ needle: JinjaValue, _ location: SourceLocation) throws -> Bool {
        switch container {
        case .undefined: return false
        case let .string(s):
            guard case let .string(n) = needle else {
                throw ChatTemplateError.runtime("'in <string>' requires string as left operand, not \(needle.typeName)", location)
            }
            return n.isEmpty || s.contains(n)
        case let .array(a), let .tuple(a): return a.contains(needle)
        case let .object(o):
            if case let .string(k) = needle { return o[k] != nil }
            return false
        case let .namespace(ns):
            if case let .string(k) = needle { return ns.attributes[k] != nil }
            return false
        default:
            throw ChatTemplateError.runtime("argument of type '\(container.typeName)' is not iterable", location)
        }
    }

    /// jinja2's `object_type_repr`, used in its Undefined messages.
    static func objectTypeRepr(_ v: JinjaValue) -> String {
        v.isNone ? "None" : "\(v.typeName) object"
    }

    /// The Undefined jinja2 returns for a missing attribute or element, with jinja2's message
    /// (runtime.py `Undefined._undefined_message`).
    static func missing(_ v: JinjaValue, _ key: JinjaValue) -> JinjaValue {
        if case let .string(name) = key {
            return .undefined(JinjaValue.pythonStringRepr(objectTypeRepr(v)) + " has no attribute " + JinjaValue.pythonStringRepr(name))
        }
        return .undefined(objectTypeRepr(v) + " has no element " + key.repr)
    }

    /// `x.name`: a dict key or namespace attribute; anything missing is Undefined, except that an
    /// attribute of Undefined is an error (jinja2's default Undefined).
    static func attribute(_ v: JinjaValue, _ name: String, _ location: SourceLocation) throws -> JinjaValue {
        switch v {
        case let .undefined(message):
            throw ChatTemplateError.runtime(message, location)
        case let .object(o):
            return o[name] ?? missing(v, .string(name))
        case let .namespace(ns):
            return ns.attributes[name] ?? missing(v, .string(name))
        default:
            return missing(v, .string(name))
        }
    }

    /// `x[key]`: out-of-range indices and missing keys are Undefined, as in jinja2's `Environment.getitem`.
    static func item(_ v: JinjaValue, _ key: JinjaValue, _ location: SourceLocation) throws -> JinjaValue {
        switch (v, key) {
        case let (.undefined(message), _):
            throw ChatTemplateError.runtime(message, location)
        case let (.array(a), _), let (.tuple(a), _):
            guard let i = key.integer else { break }
            let j = i < 0 ? a.count + i : i
            return j >= 0 && j < a.count ? a[j] : missing(v, key)
        case let (.string(s), _):
            guard let i = key.integer else { break }
            let scalars = Array(s.unicodeScalars)
            let j = i < 0 ? scalars.count + i : i
            return j >= 0 && j < scalars.count ? .string(String(scalars[j])) : missing(v, key)
        case let (.object(o), .string(k)):
            return o[k] ?? missing(v, key)
        case let (.namespace(ns), .string(k)):
            return ns.attributes[k] ?? missing(v, key)
        default:
            break
        }
        return missing(v, key)
    }

    static func slice(_ v: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?,
                      _ location: SourceLocation) throws -> JinjaValue {
        if let e = undefinedError(v, location) { throw e }
        func bound(_ b: JinjaValue?) throws -> Int? {
            guard let b, !b.isNone else { return nil }
            guard let i = b.integer else {
                throw ChatTemplateError.runtime("slice indices must be integers or None, not \(b.typeName)", location)
            }
            return i
        }
        let stepValue = try bound(step) ?? 1
        if stepValue == 0 { throw ChatTemplateError.runtime("slice step cannot be zero", location) }
        func indices(_ count: Int) throws -> [Int] {
            // CPython's PySlice_AdjustIndices.
            var lo = try bound(start), hi = try bound(stop)
            if stepValue > 0 {
                lo = lo.map { $0 < 0 ? max(0, $0 + count) : min($0, count) } ?? 0
                hi = hi.map { $0 < 0 ? max(0, $0 + count) : min($0, count) } ?? count
                return Array(stride(from: lo!, to: hi!, by: stepValue))
            }
            lo = lo.map { $0 < 0 ? max(-1, $0 + count) : min($0, count - 1) } ?? count - 1
            hi = hi.map { $0 < 0 ? max(-1, $0 + count) : min($0, count - 1) } ?? -1
            return Array(stride(from: lo!, to: hi!, by: stepValue))
        }
        switch v {
        case let .array(a): return .array(try indices(a.count).map { a[$0] })
        case let .tuple(a): return .tuple(try indices(a.count).map { a[$0] })
        case let .string(s):
            let scalars = Array(s.unicodeScalars)
            var out = String.UnicodeScalarView()
            for i in try indices(scalars.count) { out.append(scalars[i]) }
            return .string(String(out))
        default:
            throw ChatTemplateError.runtime("'\(v.typeName)' object is not subscriptable", location)
        }
    }
}
