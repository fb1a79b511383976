/// Where in the template source something is: 1-based line and column (in Unicode scalars).
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public var description: String { "line \(line), column \(column)" }
}

/// Errors from parsing or rendering a chat template.
public enum ChatTemplateError: Error, Equatable, CustomStringConvertible {
    /// The template is not valid Jinja (unterminated tag, unexpected token, missing end tag).
    case syntax(String, SourceLocation)
    /// Valid Jinja that this interpreter does not implement (include, extends, call blocks, an unknown filter...).
    case unsupported(String, SourceLocation)
    /// Evaluation failed (undefined attribute access, type error, division by zero...).
    case runtime(String, SourceLocation)
    /// The template called `raise_exception(message)`.
    case raised(String, SourceLocation)
    /// The template went past one of `JinjaLimits` (nesting depth, steps, string or list size).
    case limitExceeded(String, SourceLocation)

    public var message: String {
        switch self {
        case let .syntax(m, _), let .unsupported(m, _), let .runtime(m, _), let .raised(m, _), let .limitExceeded(m, _): return m
        }
    }

    public var location: SourceLocation {
        switch self {
        case let .syntax(_, l), let .unsupported(_, l), let .runtime(_, l), let .raised(_, l), let .limitExceeded(_, l): return l
        }
    }

    public var description: String {
        switch self {
        case let .syntax(m, l): return "chat template syntax error at \(l): \(m)"
        case let .unsupported(m, l): return "chat template uses an unsupported construct at \(l): \(m)"
        case let .runtime(m, l): return "chat template error at \(l): \(m)"
        case let .raised(m, l): return "chat template raised an exception at \(l): \(m)"
        case let .limitExceeded(m, l): return "chat template exceeds a limit at \(l): \(m)"
        }
    }
}
