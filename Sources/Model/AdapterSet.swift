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

    /// Decode rows: Y[t, :] += delta(X[t, :]) for t < rows (X [rows, ldx], Y [rows, ldy]), each row's
    /// bits the same whatever `rows` is (batch-invariant decoding). Default: one `apply` per row.
    func applyRows(layer: Int, module: LinearModule, x: UnsafePointer<Float>, ldx: Int, rows: Int,
                   y: UnsafeMutablePointer<Float>, ldy: Int)
}

extension LinearDelta {
    public func applyRows(layer: Int, module: LinearModule, x: UnsafePointer<Float>, ldx: Int, rows: Int,
                          y: UnsafeMutablePointer<Float>, ldy: Int) {
        for t in 0..<rows { apply(layer: layer, module: module, x: x + t * ldx, tokens: 1, y: y + t * ldy) }
    }
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

    @inline(__always)
    func applyRows(layer: Int, module: LinearModule, x: UnsafePointer<Float>, ldx: Int, rows: Int,
                   y: UnsafeMutablePointer<Float>, ldy: Int) {
        for d in deltas { d.applyRows(layer: layer, module: module, x: x, ldx: ldx, rows: rows, y: y, ldy: ldy) }
    }

    /// Whether both sets hold the same adapters (the same objects, in the same order).
    @inline(__always)
    func isSame(as other: AdapterSet) -> Bool {
        guard deltas.count == other.deltas.count else { return false }
        for i in deltas.indices where deltas[i] !== other.deltas[i] { return false }
        return true
    }
}
