/// Why quantized weight state was refused: what was checked, what it should be, what it is.
public enum QuantizedError: Error, Equatable, CustomStringConvertible {
    /// A buffer has the wrong length for the shape it was declared with.
    case sizeMismatch(field: String, expected: Int, actual: Int)
    /// A shape that this format cannot hold (empty, negative, or not 2-D for a linear weight).
    case badShape(field: String, shape: [Int])
    /// A value outside what the format allows (e.g. a block size other than the supported one).
    case badValue(field: String, value: String, hint: String)

    public var description: String {
        switch self {
        case let .sizeMismatch(field, expected, actual):
            return "\(field): expected \(expected) elements, found \(actual)"
        case let .badShape(field, shape):
            return "\(field): unsupported shape \(shape)"
        case let .badValue(field, value, hint):
            return "\(field): unsupported value \(value) (\(hint))"
        }
    }
}
