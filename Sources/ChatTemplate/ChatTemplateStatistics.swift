import Synchronization

/// Process-wide counts that make the template engine's memory use observable: the leak tests check that
/// a template's syntax tree is freed with it, and that a server parses its model's template once.
public enum ChatTemplateStatistics {
    static let parseCount = Atomic<Int>(0)
    static let liveExpressionCount = Atomic<Int>(0)

    /// Templates parsed (`ChatTemplate.init`) since the process started, successfully or not.
    public static var parses: Int { parseCount.load(ordering: .relaxed) }

    /// Expression nodes of parsed templates alive now (every `{{ }}`, condition, argument and value has some);
    /// back to its earlier value once the templates parsed since, and everything they rendered, are gone.
    public static var liveExpressions: Int { liveExpressionCount.load(ordering: .relaxed) }
}
