import Quantization

/// Runs `body` with decode rows' activations set to `activations` (`QuantizedKernelDispatch.decodeActivations`),
/// then restores the previous setting. Tests that compare decode rows with fp32 bounds pin `.f32`; their
/// int8 twins pin `.q8` and use `Q8Decode`'s bounds.
public func withDecodeActivations<T>(_ activations: DecodeActivations, _ body: () throws -> T) rethrows -> T {
    let saved = QuantizedKernelDispatch.decodeActivations
    QuantizedKernelDispatch.decodeActivations = activations
    defer { QuantizedKernelDispatch.decodeActivations = saved }
    return try body()
}
