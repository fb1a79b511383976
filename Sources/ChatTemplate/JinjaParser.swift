/// Recursive-descent parser from tokens to statements, with jinja2's operator precedence
/// (jinja2/parser.py): conditional < or < and < not < comparisons < + - < ~ < * / // % < ** < unary
/// < filters and tests < postfix (attribute, subscript, call) < primary.
struct JinjaParser {
    private let tokens: [JinjaToken]
    private var p = 0
    /// Current nesting (blocks and expressions), bounded by `JinjaLimits.maxParseDepth`.
    private var depth = 0

    /// Tags this interpreter knows are valid Jinja but does not implement.
    private static let unsupportedTags: Set<String> = [
        "include", "extends", "import", "from", "block", "filter", "with", "autoescape", "do", "trans",
    ]

    init(tokens: [JinjaToken]) { self.tokens = tokens }

    static func parse(_ source: String) throws -> [Node] {
        var parser = JinjaParser(tokens: try JinjaLexer.tokenize(source))
        let (nodes, end) = try parser.parseBody(until: [])
        if let end { throw ChatTemplateError.syntax("unexpected '\(end.0)'", end.1) }
        return nodes
    }

    // MARK: Token helpers

    private var current: JinjaToken { tokens[p] }
    private func peekToken(_ k: Int = 1) -> JinjaToken { tokens[min(p + k, tokens.count - 1)] }
    private mutating func next() -> JinjaToken { let t = tokens[p]; if p < tokens.count - 1 { p += 1 }; return t }

    private func isOp(_ op: String, _ t: JinjaToken? = nil) -> Bool { (t ?? current).kind == .op(op) }
    private func isName(_ n: String, _ t: JinjaToken? = nil) -> Bool { (t ?? current).kind == .name(n) }

    private mutating func skipOp(_ op: String) -> Bool { if isOp(op) { p += 1; return true }; return false }
    private mutating func skipName(_ n: String) -> Bool { if isName(n) { p += 1; return true }; return false }

    private func describe(_ t: JinjaToken) -> String {
        switch t.kind {
        case let .text(s): return "text \(JinjaValue.pythonStringRepr(String(s.prefix(20))))"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case let .name(n): return "'\(n)'"
        case let .string(s): return "string \(JinjaValue.pythonStringRepr(s))"
        case let .integer(i): return "integer \(i)"
        case let .float(d): return "number \(d)"
        case let .op(o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    private func unexpected(_ expected: String) -> ChatTemplateError {
        .syntax("expected \(expected), got \(describe(current))", current.location)
    }

    private mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw unexpected("'\(op)'") }
    }

    private mutating func expectBlockEnd() throws {
        guard case .blockEnd = current.kind else { throw unexpected("'%}'") }
        p += 1
    }

    private mutating func expectName() throws -> String {
        guard case let .name(n) = current.kind else { throw unexpected("a name") }
        p += 1
        return n
    }

    /// Enters one level of nesting; every recursive path of the parser goes through here
    /// (statements, expressions, `not` and unary chains), so no input can exhaust the stack.
    private mutating func nest() throws {
        depth += 1
        if depth > JinjaLimits.maxParseDepth {
            throw ChatTemplateError.limitExceeded(
                "nesting deeper than \(JinjaLimits.maxParseDepth) levels (JinjaLimits.maxParseDepth)", current.location)
        }
    }

    // MARK: Statements

    /// Parses until a block tag whose keyword is in `ends` (returned with its location, the keyword consumed)
    /// or the end of the template (nil).
    private mutating func parseBody(until ends: Set<String>) throws -> ([Node], (String, SourceLocation)?) {
        var nodes: [Node] = []
        while true {
            let t = current
            switch t.kind {
            case .eof:
                return (nodes, nil)
            case let .text(s):
                p += 1
                nodes.append(.text(s))
            case .variableBegin:
                p += 1
                let e = try parseTupleOrExpression()
                guard case .variableEnd = current.kind else { throw unexpected("'}}'") }
                p += 1
                nodes.append(.output(e))
            case .blockBegin:
                let keywordToken = peekToken()
                guard case let .name(keyword) = keywordToken.kind else {
                    p += 1
                    throw unexpected("a tag name")
                }
                if ends.contains(keyword) {
                    p += 2
                    return (nodes, (keyword, keywordToken.location))
                }
                p += 2
                nodes.append(try parseStatement(keyword, keywordToken.location))
            default:
                throw unexpected("text or a tag")
            }
        }
    }

    private mutating func parseBody(until ends: Set<String>, opened: String, at location: SourceLocation) throws
        -> ([Node], String) {
        let (nodes, end) = try parseBody(until: ends)
        guard let end else {
            let names = ends.sorted().map { "'\($0)'" }.joined(separator: " or ")
            throw ChatTemplateError.syntax("'\(opened)' tag is never closed (expected \(names))", location)
        }
        return (nodes, end.0)
    }

    private mutating func parseStatement(_ keyword: String, _ location: SourceLocation) throws -> Node {
        try nest()
        defer { depth -= 1 }
        switch keyword {
        case "if": return try parseIf(location)
        case "for": return try parseFor(location)
        case "set": return try parseSet(location)
        case "macro": return try parseMacro(location)
        case "call":
            if isOp("(") { throw ChatTemplateError.unsupported("call blocks with caller arguments", current.location) }
            let call = try parseExpression()
            guard case .call = call.kind else { throw ChatTemplateError.syntax("expected a macro call after 'call'", call.location) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endcall"], opened: "call", at: location)
            try expectBlockEnd()
            return .callBlock(call, body)
        case "break":
            try expectBlockEnd()
            return .breakLoop(location)
        case "continue":
            try expectBlockEnd()
            return .continueLoop(location)
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"], opened: "generation", at: location)
            try expectBlockEnd()
            return .generation(body)
        default:
            if Self.unsupportedTags.contains(keyword) {
                throw ChatTemplateError.unsupported("the '{% \(keyword) %}' tag", location)
            }
            if keyword.hasPrefix("end") || keyword == "else" || keyword == "elif" {
                throw ChatTemplateError.syntax("unexpected '\(keyword)'", location)
            }
            throw ChatTemplateError.unsupported("unknown tag '\(keyword)'", location)
        }
    }

    private mutating func parseIf(_ location: SourceLocation) throws -> Node {
        var branches: [(Expr, [Node])] = []
        var condition = try parseTupleOrExpression()
        while true {
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["elif", "else", "endif"], opened: "if", at: location)
            branches.append((condition, body))
            switch end {
            case "elif":
                condition = try parseTupleOrExpression()
            case "else":
                try expectBlockEnd()
                let (otherwise, _) = try parseBody(until: ["endif"], opened: "if", at: location)
                try expectBlockEnd()
                return .ifChain(branches, otherwise: otherwise)
            default:
                try expectBlockEnd()
                return .ifChain(branches, otherwise: nil)
            }
        }
    }

    private mutating func parseFor(_ location: SourceLocation) throws -> Node {
        let target = try parseAssignTarget(allowAttribute: false)
        guard skipName("in") else { throw unexpected("'in'") }
        let iterable = try parseTupleOrExpression(withCondition: false)
        var filter: Expr?
        if skipName("if") { filter = try parseExpression() }
        if isName("recursive") { throw ChatTemplateError.unsupported("recursive for loops", current.location) }
        try expectBlockEnd()
        let (body, end) = try parseBody(until: ["endfor", "else"], opened: "for", at: location)
        var otherwise: [Node]?
        try expectBlockEnd()
        if end == "else" {
            (otherwise, _) = try parseBody(until: ["endfor"], opened: "for", at: location)
            try expectBlockEnd()
        }
        return .forLoop(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise, location: location)
    }

    private mutating func parseSet(_ location: SourceLocation) throws -> Node {
        let target = try parseAssignTarget(allowAttribute: true)
        if skipOp("=") {
            let value = try parseTupleOrExpression()
            try expectBlockEnd()
            return .set(target, value, location: location)
        }
        guard case let .name(name) = target else { throw unexpected("'='") }
        if isOp("|") { throw ChatTemplateError.unsupported("filtered block assignment ({% set x | filter %})", current.location) }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endset"], opened: "set", at: location)
        try expectBlockEnd()
        return .setBlock(name, body)
    }

    private mutating func parseMacro(_ location: SourceLocation) throws -> Node {
        let name = try expectName()
        try expectOp("(")
        var parameters: [(String, Expr?)] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let param = try expectName()
            parameters.append((param, skipOp("=") ? try parseExpression() : nil))
        }
        try expectOp(")")
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endmacro"], opened: "macro", at: location)
        if case .name = current.kind { p += 1 }
        try expectBlockEnd()
        return .macro(name: name, parameters: parameters, body: body)
    }

    private mutating func parseAssignTarget(allowAttribute: Bool) throws -> AssignTarget {
        let parenthesized = skipOp("(")
        var names = [try expectName()]
        if allowAttribute, !parenthesized, skipOp(".") {
            return .attribute(names[0], try expectName())
        }
        while skipOp(",") {
            if parenthesized && isOp(")") { break }
            names.append(try expectName())
        }
        if parenthesized { try expectOp(")") }
        return names.count == 1 && !parenthesized ? .name(names[0]) : .names(names)
    }

    // MARK: Expressions

    /// An expression, or an implicit tuple `a, b` (allowed in output, set values and for iterables).
    private mutating func parseTupleOrExpression(withCondition: Bool = true) throws -> Expr {
        let location = current.location
        let first = withCondition ? try parseExpression() : try parseOr()
        guard isOp(",") else { return first }
        var items = [first]
        while skipOp(",") {
            if case .blockEnd = current.kind { break }
            if case .variableEnd = current.kind { break }
            items.append(withCondition ? try parseExpression() : try parseOr())
        }
        return Expr(.tuple(items), location)
    }

    mutating func parseExpression() throws -> Expr {
        try nest()
        defer { depth -= 1 }
        let location = current.location
        var expr = try parseOr()
        while skipName("if") {
            let test = try parseOr()
            let otherwise = skipName("else") ? try parseExpression() : nil
            expr = Expr(.conditional(then: expr, test: test, otherwise: otherwise), location)
        }
        return expr
    }

    private mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while isName("or") {
            let loc = next().location
            left = Expr(.or(left, try parseAnd()), loc)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while isName("and") {
            let loc = next().location
            left = Expr(.and(left, try parseNot()), loc)
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        if isName("not") {
            try nest()
            defer { depth -= 1 }
            let loc = next().location
            return Expr(.not(try parseNot()), loc)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let location = current.location
        let first = try parseMath1()
        var ops: [(String, Expr)] = []
        while true {
            if case let .op(o) = current.kind, ["==", "!=", "<", "<=", ">", ">="].contains(o) {
                p += 1
                ops.append((o, try parseMath1()))
            } else if isName("in") {
                p += 1
                ops.append(("in", try parseMath1()))
            } else if isName("not"), isName("in", peekToken()) {
                p += 2
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : Expr(.compare(first, ops), location)
    }

    private mutating func parseBinary(_ ops: Set<String>, _ operand: (inout JinjaParser) throws -> Expr) throws -> Expr {
        var left = try operand(&self)
        while case let .op(o) = current.kind, ops.contains(o) {
            let loc = next().location
            left = Expr(.binary(o, left, try operand(&self)), loc)
        }
        return left
    }

    private mutating func parseMath1() throws -> Expr { try parseBinary(["+", "-"]) { try $0.parseConcat() } }
    private mutating func parseConcat() throws -> Expr { try parseBinary(["~"]) { try $0.parseMath2() } }
    private mutating func parseMath2() throws -> Expr { try parseBinary(["*", "/", "//", "%"]) { try $0.parsePow() } }
    private mutating func parsePow() throws -> Expr { try parseBinary(["**"]) { try $0.parseUnary() } }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        let location = current.location
        var node: Expr
        if isOp("-") || isOp("+") {
            try nest()
            defer { depth -= 1 }
            let op = isOp("-") ? "-" : "+"
            p += 1
            node = Expr(.unary(op, try parseUnary(withFilter: false)), location)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> Expr {
        let t = current
        switch t.kind {
        case let .name(n):
            p += 1
            switch n {
            case "true", "True": return Expr(.literal(.bool(true)), t.location)
            case "false", "False": return Expr(.literal(.bool(false)), t.location)
            case "none", "None": return Expr(.literal(.none), t.location)
            default: return Expr(.name(n), t.location)
            }
        case var .string(s):
            p += 1
            while case let .string(more) = current.kind { s += more; p += 1 }
            return Expr(.literal(.string(s)), t.location)
        case let .integer(i):
            p += 1
            return Expr(.literal(.int(i)), t.location)
        case let .float(d):
            p += 1
            return Expr(.literal(.double(d)), t.location)
        case .op("("):
            p += 1
            if skipOp(")") { return Expr(.tuple([]), t.location) }
            let first = try parseExpression()
            if skipOp(")") { return first }
            var items = [first]
            while skipOp(",") {
                if isOp(")") { break }
                items.append(try parseExpression())
            }
            try expectOp(")")
            return Expr(.tuple(items), t.location)
        case .op("["):
            p += 1
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(.list(items), t.location)
        case .op("{"):
            p += 1
            var pairs: [(Expr, Expr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            try expectOp("}")
            return Expr(.dict(pairs), t.location)
        default:
            throw unexpected("an expression")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            let loc = current.location
            if skipOp(".") {
                switch current.kind {
                case let .name(n):
                    p += 1
                    node = Expr(.attribute(node, n), loc)
                case let .integer(i):
                    p += 1
                    node = Expr(.item(node, Expr(.literal(.int(i)), loc)), loc)
                default:
                    throw unexpected("an attribute name")
                }
            } else if isOp("[") {
                p += 1
                node = try parseSubscript(node, loc)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ target: Expr, _ loc: SourceLocation) throws -> Expr {
        var parts: [Expr?] = [nil]
        var sawColon = false
        if !isOp(":") { parts[0] = try parseExpression() }
        while skipOp(":") {
            sawColon = true
            if parts.count == 3 { throw unexpected("']'") }
            parts.append(isOp(":") || isOp("]") ? nil : try parseExpression())
        }
        if isOp(",") { throw ChatTemplateError.unsupported("tuple subscripts", current.location) }
        try expectOp("]")
        if !sawColon { return Expr(.item(target, parts[0]!), loc) }
        while parts.count < 3 { parts.append(nil) }
        return Expr(.slice(target, parts[0], parts[1], parts[2]), loc)
    }

    private mutating func parseCallArguments() throws -> ([Expr], [(String, Expr)]) {
        try expectOp("(")
        var args: [Expr] = []
        var kwargs: [(String, Expr)] = []
        while !isOp(")") {
            if !args.isEmpty || !kwargs.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            if isOp("**") { throw ChatTemplateError.unsupported("**kwargs in calls", current.location) }
            if isOp("*") {
                let loc = next().location
                args.append(Expr(.splat(try parseExpression()), loc))
                continue
            }
            if case let .name(n) = current.kind, isOp("=", peekToken()) {
                p += 2
                kwargs.append((n, try parseExpression()))
            } else {
                if !kwargs.isEmpty { throw ChatTemplateError.syntax("positional argument after keyword argument", current.location) }
                args.append(try parseExpression())
            }
        }
        try expectOp(")")
        return (args, kwargs)
    }

    private mutating func parseCall(_ callee: Expr) throws -> Expr {
        let loc = current.location
        let (args, kwargs) = try parseCallArguments()
        return Expr(.call(callee, args, kwargs), loc)
    }

    private mutating func parseFilterExpr(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if isOp("|") {
                p += 1
                let loc = current.location
                var name = try expectName()
                while skipOp(".") { name += "." + (try expectName()) }
                guard JinjaFilters.names.contains(name) else {
                    throw ChatTemplateError.unsupported("unknown filter '\(name)'", loc)
                }
                var args: [Expr] = [], kwargs: [(String, Expr)] = []
                if isOp("(") { (args, kwargs) = try parseCallArguments() }
                node = Expr(.filter(node, name, args, kwargs), loc)
            } else if isName("is") {
                p += 1
                let negated = skipName("not")
                let loc = current.location
                let name = try expectName()
                guard JinjaTests.names.contains(name) else {
                    throw ChatTemplateError.unsupported("unknown test '\(name)'", loc)
                }
                var args: [Expr] = []
                if isOp("(") {
                    let (a, kw) = try parseCallArguments()
                    if !kw.isEmpty { throw ChatTemplateError.unsupported("keyword arguments to tests", loc) }
                    args = a
                } else if startsBareTestArgument() {
                    args = [try parsePostfix(try parsePrimary())]
                }
                node = Expr(.test(node, name, args, negated: negated), loc)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    /// jinja2 lets a test take one argument without parentheses (`x is divisibleby 3`).
    private func startsBareTestArgument() -> Bool {
        switch current.kind {
        case let .name(n): return !["else", "or", "and", "is", "if", "in", "not"].contains(n)
        case .string, .integer, .float: return true
        case .op("["), .op("{"): return true
        default: return false
        }
    }
}
