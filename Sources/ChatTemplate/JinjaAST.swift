import Synchronization

/// An expression node with the location of its first token.
final class Expr {
    indirect enum Kind {
        case literal(JinjaValue)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(Expr, Expr)])
        case unary(String, Expr)                 // "-", "+"
        case not(Expr)
        case binary(String, Expr, Expr)          // + - * / // % ** ~
        case and(Expr, Expr)
        case or(Expr, Expr)
        case compare(Expr, [(String, Expr)])     // == != < <= > >= in notin
        case conditional(then: Expr, test: Expr, otherwise: Expr?)
        case attribute(Expr, String)
        case item(Expr, Expr)
        case slice(Expr, Expr?, Expr?, Expr?)
        case call(Expr, [Expr], [(String, Expr)])
        /// `*expr` inside call arguments: the elements of a list passed as positional arguments.
        case splat(Expr)
        case filter(Expr, String, [Expr], [(String, Expr)])
        case test(Expr, String, [Expr], negated: Bool)
    }

    let kind: Kind
    let location: SourceLocation

    init(_ kind: Kind, _ location: SourceLocation) {
        self.kind = kind
        self.location = location
        ChatTemplateStatistics.liveExpressionCount.wrappingAdd(1, ordering: .relaxed)
    }

    deinit { ChatTemplateStatistics.liveExpressionCount.wrappingSubtract(1, ordering: .relaxed) }
}

/// Where `{% set %}` and `{% for %}` put values.
enum AssignTarget {
    case name(String)
    case names([String])
    case attribute(String, String)               // ns.attr
}

/// A template statement.
indirect enum Node {
    case text(String)
    case output(Expr)
    case ifChain([(Expr, [Node])], otherwise: [Node]?)
    case forLoop(target: AssignTarget, iterable: Expr, filter: Expr?, body: [Node], otherwise: [Node]?, location: SourceLocation)
    case set(AssignTarget, Expr, location: SourceLocation)
    case setBlock(String, [Node])
    case macro(name: String, parameters: [(String, Expr?)], body: [Node])
    /// `{% call macro(args) %}body{% endcall %}`: calls the macro with `caller()` rendering the body.
    case callBlock(Expr, [Node])
    case breakLoop(SourceLocation)
    case continueLoop(SourceLocation)
    /// transformers' `{% generation %}` extension: renders its body (assistant-token tracking is not used here).
    case generation([Node])
}
