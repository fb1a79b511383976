import Foundation

/// A variable scope: a `for` iteration and a macro call get a child scope; `if` does not (jinja2 semantics).
final class JinjaScope {
    private var variables: [String: JinjaValue] = [:]
    let parent: JinjaScope?

    init(parent: JinjaScope?, _ variables: [String: JinjaValue] = [:]) {
        self.parent = parent
        self.variables = variables
    }

    func lookup(_ name: String) -> JinjaValue? {
        var s: JinjaScope? = self
        while let scope = s {
            if let v = scope.variables[name] { return v }
            s = scope.parent
        }
        return nil
    }

    func set(_ name: String, _ value: JinjaValue) { variables[name] = value }

    /// Drops every variable of this scope and of its ancestors not in `cleared` (see
    /// `JinjaInterpreter.capturedScopes`); adds them to `cleared`, so many scopes sharing ancestors cost
    /// one walk of each.
    func clearChain(_ cleared: inout Set<ObjectIdentifier>) {
        var s: JinjaScope? = self
        while let scope = s, cleared.insert(ObjectIdentifier(scope)).inserted {
            scope.variables.removeAll()
            s = scope.parent
        }
    }
}

/// Thrown by builtins that have no source location; the interpreter adds the location of the call.
struct JinjaCallError: Error {
    let message: String
    var raised = false
    /// A `JinjaLimits` budget was exceeded (reported as `ChatTemplateError.limitExceeded`).
    var limit = false
}

/// Evaluates a parsed template.
final class JinjaInterpreter {
    private enum Flow { case normal, breakLoop, continueLoop }
    private var budget = JinjaBudget()
    /// The location of the expression or statement being evaluated, for budget errors.
    private var here = SourceLocation(line: 1, column: 1)
    /// Scopes a macro or `caller` closure captured. Such a closure is stored in a scope (or in a namespace a
    /// scope holds) that its own captured scope reaches, a reference cycle that would keep the scopes, the
    /// closure and the macro body's AST alive forever; `render` empties these scopes (and their parents)
    /// when it ends, which breaks every such cycle.
    private var capturedScopes: [JinjaScope] = []

    func render(_ nodes: [Node], globals: [String: JinjaValue]) throws -> String {
        var builtins = JinjaBuiltins.globals
        for (k, v) in globals { builtins[k] = v }
        let root = JinjaScope(parent: JinjaScope(parent: nil, builtins))
        defer {
            var cleared = Set<ObjectIdentifier>()
            root.clearChain(&cleared)
            for scope in capturedScopes { scope.clearChain(&cleared) }
            capturedScopes.removeAll()
        }
        var out = ""
        _ = try execute(nodes, root, &out)
        return out
    }

    // MARK: Budgets

    /// Charges `n` steps of `JinjaLimits.maxSteps`.
    private func charge(_ n: Int) throws {
        if !budget.charge(n) {
            throw ChatTemplateError.limitExceeded(
                "rendering takes more than \(JinjaLimits.maxSteps) steps (JinjaLimits.maxSteps); a loop runs too long", here)
        }
    }

    /// Enters one level of evaluation depth (`JinjaLimits.maxRenderDepth`); pair with `budget.leave()`.
    private func enter() throws {
        if !budget.enter() {
            budget.leave()
            throw ChatTemplateError.limitExceeded(
                "evaluation nested deeper than \(JinjaLimits.maxRenderDepth) levels (JinjaLimits.maxRenderDepth) "
                    + "or than the thread's stack allows; a macro probably calls itself without end", here)
        }
    }

    /// Charges the cost of a value a builtin or operator created and checks its size.
    private func account(_ v: JinjaValue, _ location: SourceLocation) throws -> JinjaValue {
        switch v {
        case let .string(s):
            let bytes = s.utf8.count
            if bytes > JinjaLimits.maxStringBytes {
                throw ChatTemplateError.limitExceeded(JinjaLimits.tooLongString(bytes, "this expression").message, location)
            }
            try charge(bytes / 64)
        case let .array(a), let .tuple(a):
            if a.count > JinjaLimits.maxListLength {
                throw ChatTemplateError.limitExceeded(JinjaLimits.tooLongList(a.count, "this expression").message, location)
            }
            try charge(a.count)
        default:
            break
        }
        return v
    }

    /// Checks the nesting of a container a literal or assignment builds (`JinjaLimits.maxValueDepth`).
    private func nested(_ v: JinjaValue, _ location: SourceLocation) throws -> JinjaValue {
        try charge(try located(location) { try JinjaLimits.checkDepth(v, "this value") })
        return v
    }

        /// Appends `text` to the rendered output, within `JinjaLimits.maxStringBytes`.
    private func append(_ text: String, to out: inout String, _ location: SourceLocation) throws {
        let total = out.utf8.count + text.utf8.count
        if total > JinjaLimits.maxStringBytes {
            throw ChatTemplateError.limitExceeded(JinjaLimits.tooLongString(total, "the rendered output").message, location)
        }
        try charge(text.utf8.count / 64)
        out += text
    }

    // MARK: Statements

    private func execute(_ nodes: [Node], _ scope: JinjaScope, _ out: inout String) throws -> Flow {
        try enter()
        defer { budget.leave() }
        for node in nodes {
            try charge(1)
            switch node {
            case let .text(s):
                try append(s, to: &out, here)
            case let .output(e):
                let v = try eval(e, scope)
                if case .string = v {} else {
                    try located(e.location) { try JinjaLimits.checkText(v, "printing this value") }
                }
                try append(v.description, to: &out, e.location)
            case let .ifChain(branches, otherwise):
                var taken = false
                for (condition, body) in branches where try eval(condition, scope).truthy {
                    taken = true
                    let flow = try execute(body, scope, &out)
                    if flow != .normal { return flow }
                    break
                }
                if !taken, let otherwise {
                    let flow = try execute(otherwise, scope, &out)
                    if flow != .normal { return flow }
                }
            case let .forLoop(target, iterable, filter, body, otherwise, location):
                here = location
                try executeFor(target, iterable, filter, body, otherwise, location, scope, &out)
            case let .set(target, e, location):
                try assign(target, try eval(e, scope), scope, location)
            case let .setBlock(name, body):
                var captured = ""
                _ = try execute(body, scope, &captured)
                scope.set(name, .string(captured))
            case let .macro(name, parameters, body):
                scope.set(name, makeMacro(name, parameters, body, scope))
            case let .callBlock(callExpr, body):
                capturedScopes.append(scope)
                let caller = JinjaValue.function(JinjaFunction(name: "caller") { _, _ in
                    var captured = ""
                    _ = try self.execute(body, JinjaScope(parent: scope), &captured)
                    return .string(captured)
                })
                out += try eval(callExpr, scope, caller: caller).description
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            case let .generation(body):
                let flow = try execute(body, scope, &out)
                if flow != .normal { return flow }
            }
        }
        return .normal
    }

    private func assign(_ target: AssignTarget, _ value: JinjaValue, _ scope: JinjaScope, _ location: SourceLocation) throws {
        switch target {
        case let .name(n):
            scope.set(n, value)
        case let .names(names):
            guard let items = try? iterate(value, location), items.count == names.count else {
                throw ChatTemplateError.runtime("cannot unpack \(value.typeName) into \(names.count) names", location)
            }
            for (n, v) in zip(names, items) { scope.set(n, v) }
        case let .attribute(object, attribute):
            guard case let .namespace(ns)? = scope.lookup(object) else {
                throw ChatTemplateError.runtime("cannot assign attribute on non-namespace object '\(object)'", location)
            }
            let previous = ns.attributes[attribute]
            ns.attributes[attribute] = value
            // After assigning, so that `{% set ns.me = ns %}` is seen as the cycle it makes; a refused
            // value is taken back out (which also breaks the cycle, so the namespace can be freed).
            do { _ = try nested(.namespace(ns), location) } catch { ns.attributes[attribute] = previous; throw error }
        }
    }

    private func executeFor(_ target: AssignTarget, _ iterable: Expr, _ filter: Expr?, _ body: [Node], _ otherwise: [Node]?,
                            _ location: SourceLocation, _ scope: JinjaScope, _ out: inout String) throws {
        var items = try iterate(try eval(iterable, scope), iterable.location)
        if let filter {
            items = try items.filter { item in
                let s = JinjaScope(parent: scope)
                try assign(target, item, s, location)
                return try eval(filter, s).truthy
            }
        }
        if items.isEmpty {
            if let otherwise { _ = try execute(otherwise, scope, &out) }
            return
        }
        let n = items.count
        for (i, item) in items.enumerated() {
            let s = JinjaScope(parent: scope)
            try assign(target, item, s, location)
            var loop = JinjaObject()
            loop["index"] = .int(i + 1)
            loop["index0"] = .int(i)
            loop["revindex"] = .int(n - i)
            loop["revindex0"] = .int(n - i - 1)
            loop["first"] = .bool(i == 0)
            loop["last"] = .bool(i == n - 1)
            loop["length"] = .int(n)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            loop["previtem"] = i > 0 ? items[i - 1] : .undefined("'loop.previtem' is undefined on the first iteration")
            loop["nextitem"] = i < n - 1 ? items[i + 1] : .undefined("'loop.nextitem' is undefined on the last iteration")
            loop["cycle"] = .function(JinjaFunction(name: "loop.cycle") { args, _ in
                guard !args.isEmpty else { throw JinjaCallError(message: "loop.cycle() needs at least one argument") }
                return args[i % args.count]
            })
            here = location
            try charge(1)
            if case let .object(outer)? = scope.lookup("loop"), let depth = outer["depth"]?.integer {
                loop["depth"] = .int(depth + 1)
                loop["depth0"] = .int(depth)
            }
            s.set("loop", .object(loop))
            if try execute(body, s, &out) == .breakLoop { break }
        }
    }

    private func makeMacro(_ name: String, _ parameters: [(String, Expr?)], _ body: [Node], _ scope: JinjaScope) -> JinjaValue {
        capturedScopes.append(scope)
        // The closure holds the interpreter strongly: the interpreter holds no closure (only scopes, emptied
        // at the end of `render`), so that makes no cycle, and a macro that outlives the render (stored in a
        // namespace the caller passed in) still has an interpreter to run on.
        return .function(JinjaFunction(name: name) { args, kwargs in
            if args.count > parameters.count {
                throw JinjaCallError(message: "macro '\(name)' takes \(parameters.count) arguments, got \(args.count)")
            }
            let s = JinjaScope(parent: scope)
            for (i, (param, defaultValue)) in parameters.enumerated() {
                if i < args.count {
                    s.set(param, args[i])
                } else if let kw = kwargs.first(where: { $0.0 == param }) {
                    s.set(param, kw.1)
                } else if let defaultValue {
                    s.set(param, try self.eval(defaultValue, s))
                } else {
                    s.set(param, .undefined("'\(param)' is undefined (missing argument of macro '\(name)')"))
                }
            }
            if let caller = kwargs.first(where: { $0.0 == "caller" }), !parameters.contains(where: { $0.0 == "caller" }) {
                s.set("caller", caller.1)
            }
            for (k, _) in kwargs where k != "caller" && !parameters.contains(where: { $0.0 == k }) {
                throw JinjaCallError(message: "macro '\(name)' has no parameter '\(k)'")
            }
            var out = ""
            _ = try self.execute(body, s, &out)
            return .string(out)
        })
    }

    // MARK: Expressions

    /// Evaluates `e`; a call expression gets `caller` as an extra keyword argument when given (call blocks).
    func eval(_ e: Expr, _ scope: JinjaScope, caller: JinjaValue? = nil) throws -> JinjaValue {
        here = e.location
        try charge(1)
        try enter()
        defer { budget.leave() }
        switch e.kind {
        case let .literal(v):
            return v
        case let .name(n):
            return scope.lookup(n) ?? .undefined("'\(n)' is undefined")
        case let .list(items):
            return try account(try nested(.array(try items.map { try eval($0, scope) }), e.location), e.location)
        case let .tuple(items):
            return try nested(.tuple(try items.map { try eval($0, scope) }), e.location)
        case let .dict(pairs):
            var o = JinjaObject()
            for (k, v) in pairs {
                guard case let .string(key) = try eval(k, scope) else {
                    throw ChatTemplateError.unsupported("dict literal keys other than strings", k.location)
                }
                o[key] = try eval(v, scope)
            }
            return try nested(.object(o), e.location)
        case let .unary(op, operand):
            let v = try eval(operand, scope)
            try requireDefined(v, operand.location)
            if let i = v.integer { return .int(op == "-" ? -i : i) }
            if case let .double(d) = v { return .double(op == "-" ? -d : d) }
            throw ChatTemplateError.runtime("bad operand type for unary \(op): '\(v.typeName)'", e.location)
        case let .not(operand):
            return .bool(!(try eval(operand, scope).truthy))
        case let .and(a, b):
            let left = try eval(a, scope)
            return left.truthy ? try eval(b, scope) : left
        case let .or(a, b):
            let left = try eval(a, scope)
            return left.truthy ? left : try eval(b, scope)
        case let .binary(op, a, b):
            let (x, y) = (try eval(a, scope), try eval(b, scope))
            return try account(try located(e.location) { try JinjaOperators.binary(op, x, y, e.location) }, e.location)
        case let .compare(first, ops):
            var left = try eval(first, scope)
            for (op, rightExpr) in ops {
                let right = try eval(rightExpr, scope)
                if !(try JinjaOperators.compare(op, left, right, rightExpr.location)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .conditional(then, test, otherwise):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            return try otherwise.map { try eval($0, scope) } ?? .undefined("conditional expression without else")
        case let .attribute(target, name):
            return try JinjaOperators.attribute(try eval(target, scope), name, e.location)
        case let .item(target, key):
            return try JinjaOperators.item(try eval(target, scope), try eval(key, scope), e.location)
        case let .slice(target, start, stop, step):
            let v = try eval(target, scope)
            return try JinjaOperators.slice(v, try start.map { try eval($0, scope) }, try stop.map { try eval($0, scope) },
                                            try step.map { try eval($0, scope) }, e.location)
        case let .call(callee, argExprs, kwargExprs):
            var args: [JinjaValue] = []
            for a in argExprs {
                if case let .splat(inner) = a.kind {
                    let v = try eval(inner, scope)
                    guard let items = v.sequence else {
                        throw ChatTemplateError.runtime("argument after * must be a list, not \(v.typeName)", a.location)
                    }
                    args += items
                } else {
                    args.append(try eval(a, scope))
                }
            }
            var kwargs = try kwargExprs.map { ($0.0, try eval($0.1, scope)) }
            if let caller { kwargs.append(("caller", caller)) }
            return try account(try call(callee, args, kwargs, scope, e.location), e.location)
        case .splat:
            throw ChatTemplateError.syntax("'*' is only allowed in call arguments", e.location)
        case let .filter(target, name, argExprs, kwargExprs):
            let value = try eval(target, scope)
            let args = try argExprs.map { try eval($0, scope) }
            let kwargs = try kwargExprs.map { ($0.0, try eval($0.1, scope)) }
            return try account(try located(e.location) { try JinjaFilters.apply(name, value, args, kwargs, self) }, e.location)
        case let .test(target, name, argExprs, negated):
            let value = try eval(target, scope)
            let args = try argExprs.map { try eval($0, scope) }
            let result = try located(e.location) { try JinjaTests.apply(name, value, args) }
            return .bool(result != negated)
        }
    }

    private func call(_ callee: Expr, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], _ scope: JinjaScope,
                      _ location: SourceLocation) throws -> JinjaValue {
        if case let .attribute(targetExpr, name) = callee.kind {
            let target = try eval(targetExpr, scope)
            try requireDefined(target, targetExpr.location)
            var member: JinjaValue?
            if case let .object(o) = target { member = o[name] }
            if case let .namespace(ns) = target { member = ns.attributes[name] }
            if case let .function(f)? = member {
                return try located(location) { try f.call(args, kwargs) }
            }
            return try located(location) { try JinjaMethods.call(target, name, args, kwargs) }
        }
        let f = try eval(callee, scope)
        switch f {
        case let .function(fn):
            return try located(location) { try fn.call(args, kwargs) }
        case let .undefined(message):
            throw ChatTemplateError.runtime(message, callee.location)
        default:
            throw ChatTemplateError.runtime("'\(f.typeName)' object is not callable", location)
        }
    }

    /// Runs a builtin, turning its location-less errors into template errors at `location`.
    func located<T>(_ location: SourceLocation, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as JinjaCallError {
            if e.limit { throw ChatTemplateError.limitExceeded(e.message, location) }
            throw e.raised ? ChatTemplateError.raised(e.message, location) : ChatTemplateError.runtime(e.message, location)
        }
    }

    private func requireDefined(_ v: JinjaValue, _ location: SourceLocation) throws {
        if case let .undefined(message) = v { throw ChatTemplateError.runtime(message, location) }
    }

    /// Python iteration: lists and tuples by element, dicts by key, strings by character; Undefined is empty.
    func iterate(_ v: JinjaValue, _ location: SourceLocation) throws -> [JinjaValue] {
        switch v {
        case .undefined: return []
        case let .array(a), let .tuple(a): return a
        case let .object(o): return o.keys.map { .string($0) }
        case let .string(s):
            try located(location) { try JinjaLimits.checkList(s.utf8.count <= JinjaLimits.maxListLength ? 0 : s.unicodeScalars.count,
                                                              "iterating over this string") }
            return s.unicodeScalars.map { .string(String($0)) }
        default: throw ChatTemplateError.runtime("'\(v.typeName)' object is not iterable", location)
        }
    }
}
