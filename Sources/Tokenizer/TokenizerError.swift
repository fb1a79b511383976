/// Why a tokenizer could not be built. Every case names the source (a file name such as
/// `tokenizer.json`, or `GGUF metadata`) and the field at fault, so a user can find it.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read at all.
    case unreadable(file: String, reason: String)
    /// The file is not JSON, or its top level is not an object.
    case invalidJSON(file: String, reason: String)
    /// A required field is absent.
    case missingField(file: String, field: String)
    /// A field is present but has the wrong type or an impossible value.
    case invalidField(file: String, field: String, reason: String)
    /// A field names a component (model type, pre-tokenizer, normalizer, decoder, ...) this code does not implement.
    case unsupported(file: String, field: String, value: String)
    /// A merge rule names a token that is not in the vocabulary.
    case unknownMergeToken(file: String, field: String, token: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read: \(reason)"
        case let .invalidJSON(file, reason):
            return "\(file): not a valid tokenizer JSON object: \(reason)"
        case let .missingField(file, field):
            return "\(file): missing field `\(field)`"
        case let .invalidField(file, field, reason):
            return "\(file): field `\(field)`: \(reason)"
        case let .unsupported(file, field, value):
            return "\(file): field `\(field)` = \(value) is not supported"
        case let .unknownMergeToken(file, field, token):
            return "\(file): field `\(field)` names token \(token.debugDescription), which is not in the vocabulary"
        }
    }
}
