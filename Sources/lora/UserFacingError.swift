import Diagnostics
import Foundation

/// Swift's and Foundation's own errors reworded for users where the CLI prints them
/// (`ErrorText`: `DecodingError.dataCorrupted`, `EncodingError.invalidValue` or
/// `NSCocoaErrorDomain Code=516` become what went wrong, with the file and field they carry). The
/// project's typed errors already read well and pass unchanged.
struct UserFacingError: Error, CustomStringConvertible {
    let description: String

    static func reworded(_ error: Error) -> Error {
        ErrorText.isFoundationError(error) ? UserFacingError(description: ErrorText.describe(error)) : error
    }
}
