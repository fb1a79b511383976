/// The linear modules of a decoder block that adapters can target (HF module names).
public enum LinearModule: String, CaseIterable, Sendable, Codable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"
}

/// Something that adds a low-rank update to a frozen linear layer's output: y += delta(x).
/// LoRA adapters implement it; the training and serving issues build on this.
public protocol LinearDelta: AnyObject, Sendable {
    /// Y[T, N] += delta(X[T, K]) for this layer and module; a no-op for modules it does not touch.
    func apply(layer: Int, module: LinearModule, x: UnsafePointer<Float>, tokens: Int,
               y: UnsafeMutablePointer<Float>)
}

/// The adapters that apply to one forward call. Always an argument of the forward pass, never
/// global state: two sequences in flight may use different sets over the same frozen base.
public struct AdapterSet: Sendable {
    public var deltas: [any LinearDelta]

    public init(_ deltas: [any LinearDelta] = []) { self.deltas = deltas }

    /// No adapter: the base model alone.
    public static let none = AdapterSet()

    public var isEmpty: Bool { deltas.isEmpty }

    @inline(__always)
    func apply(layer: Int, module: LinearModule, x: UnsafePointer<Float>, tokens: Int, y: UnsafeMutablePointer<Float>) {
        for d in deltas { d.apply(layer: layer, module: module, x: x, tokens: tokens, y: y) }
    }
}
