/// Errors from reading model files and configurations. Each names the file and what is wrong
/// (the offset, the field, the tensor and its expected shape) so a user can act on it.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// A file that is not what it claims: truncated, an offset outside the file, an absurd count.
    case malformedFile(path: String, offset: Int?, reason: String)
    /// A configuration field this code does not implement, or a value it cannot accept.
    case unsupportedConfig(path: String, field: String, reason: String)
    /// A required configuration field is absent.
    case missingConfigField(path: String, field: String)
    case missingTensor(path: String, name: String, expectedShape: [Int])
    case wrongShape(path: String, name: String, expected: [Int], actual: [Int])
    case unsupportedTensorType(path: String, name: String, type: String)
    case fileNotFound(path: String)
    /// Input data (JSONL and similar) with the file and 1-based line.
    case badInput(path: String, line: Int, reason: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .malformedFile(path, offset, reason):
            if let offset { return "\(path): malformed at byte offset \(offset): \(reason)" }
            return "\(path): malformed: \(reason)"
        case let .unsupportedConfig(path, field, reason):
            return "\(path): unsupported config field '\(field)': \(reason)"
        case let .missingConfigField(path, field):
            return "\(path): missing config field '\(field)'"
        case let .missingTensor(path, name, shape):
            return "\(path): missing tensor '\(name)' (expected shape \(shape))"
        case let .wrongShape(path, name, expected, actual):
            return "\(path): tensor '\(name)' has shape \(actual), expected \(expected)"
        case let .unsupportedTensorType(path, name, type):
            return "\(path): tensor '\(name)' has unsupported type \(type)"
        case let .fileNotFound(path):
            return "\(path): no such file or directory"
        case let .badInput(path, line, reason):
            return "\(path):\(line): \(reason)"
        case let .invalidArgument(message):
            return message
        }
    }
}
