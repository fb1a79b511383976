import Model

/// The shape of a LoRA adapter, in PEFT's terms (`adapter_config.json`).
public struct LoRAConfig: Sendable, Equatable, Codable {
    /// Rank R (PEFT `r`).
    public var rank: Int
    /// PEFT `lora_alpha`.
    public var alpha: Float
    public var dropout: Float
    /// HF module names (q_proj ... down_proj).
    public var targets: [LinearModule]
    /// rsLoRA: scaling alpha / sqrt(R) instead of alpha / R.
    public var useRSLoRA: Bool
    /// PEFT `rank_pattern` / `alpha_pattern`: per-module overrides keyed by regular expressions
    /// matched against the module path (e.g. "q_proj" or "model.layers.3.self_attn.q_proj"),
    /// first matching key wins, in the file's order (`PatternTable`).
    public var rankPattern: PatternTable<Int>
    public var alphaPattern: PatternTable<Float>

    public init(rank: Int = 16, alpha: Float = 32, dropout: Float = 0.05, targets: [LinearModule] = LinearModule.allCases,
                useRSLoRA: Bool = false, rankPattern: PatternTable<Int> = [:], alphaPattern: PatternTable<Float> = [:]) {
        self.rank = rank; self.alpha = alpha; self.dropout = dropout; self.targets = targets
        self.useRSLoRA = useRSLoRA; self.rankPattern = rankPattern; self.alphaPattern = alphaPattern
    }

    /// The PEFT module path of a linear layer, e.g. "model.layers.3.self_attn.q_proj".
    public static func modulePath(layer: Int, module: LinearModule) -> String {
        let block: String
        switch module {
        case .q, .k, .v, .o: block = "self_attn"
        case .gate, .up, .down: block = "mlp"
        }
        return "model.layers.\(layer).\(block).\(module.rawValue)"
    }

    public func rank(layer: Int, module: LinearModule) -> Int {
        rankPattern.match(Self.modulePath(layer: layer, module: module)) ?? rank
    }

    public func alpha(layer: Int, module: LinearModule) -> Float {
        alphaPattern.match(Self.modulePath(layer: layer, module: module)) ?? alpha
    }

    public func scaling(layer: Int, module: LinearModule) -> Float {
        let r = Float(rank(layer: layer, module: module))
        let a = alpha(layer: layer, module: module)
        return useRSLoRA ? a / r.squareRoot() : a / r
    }

    public func validate() throws {
        if rank < 1 { throw TrainingError.invalidConfig(field: "rank", reason: "must be >= 1, got \(rank)") }
        if !(alpha > 0) { throw TrainingError.invalidConfig(field: "alpha", reason: "must be > 0, got \(alpha)") }
        if !(dropout >= 0 && dropout < 1) { throw TrainingError.invalidConfig(field: "dropout", reason: "must be in [0, 1), got \(dropout)") }
        if targets.isEmpty { throw TrainingError.invalidConfig(field: "targets", reason: "at least one module") }
        for (k, r) in rankPattern where r < 1 { throw TrainingError.invalidConfig(field: "rank_pattern.\(k)", reason: "must be >= 1, got \(r)") }
    }
}

public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(field: String, reason: String)
    case invalidAdapter(path: String, reason: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], actual: [Int])
    case data(String)
    /// The loss or the gradient norm of an optimizer step (1-based) is NaN or infinite; training stops
    /// before the optimizer applies it, so no non-finite value reaches the adapter.
    case nonFinite(step: Int, microBatch: Int?, quantity: String, value: Double)

    public var description: String {
        switch self {
        case let .invalidConfig(field, reason): return "invalid setting '\(field)': \(reason)"
        case let .invalidAdapter(path, reason): return "\(path): \(reason)"
        case let .shapeMismatch(path, tensor, expected, actual):
            return "\(path): tensor '\(tensor)' has shape \(actual), but the base model needs \(expected) (hint: was this adapter trained on another base model?)"
        case let .data(message): return message
        case let .nonFinite(step, micro, quantity, value):
            let at = micro.map { "step \(step), micro-batch \($0)" } ?? "step \(step)"
            return "training stopped at \(at): the \(quantity) is \(value) (not finite); the base model's weights, the data "
                + "or the settings (learning rate) produce NaN/Inf, and no adapter was written for this step "
                + "(--max-bad-steps N skips up to N such steps)"
        }
    }
}
