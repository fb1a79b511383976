import Foundation

/// Swift's and Foundation's own errors reworded for users: `DecodingError.dataCorrupted`,
/// `EncodingError.invalidValue` or `NSCocoaErrorDomain Code=516` become what went wrong, with the
/// file and field they carry. The project's typed errors already read well and pass unchanged.
struct UserFacingError: Error, CustomStringConvertible {
    let description: String

    static func reworded(_ error: Error) -> Error {
        switch error {
        case let e as DecodingError: return UserFacingError(description: describe(e))
        case let e as EncodingError: return UserFacingError(description: describe(e))
        default:
            let ns = error as NSError
            guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return error }
            return UserFacingError(description: describe(ns))
        }
    }

    private static func field(_ path: [CodingKey]) -> String {
        path.isEmpty ? "the top level" : "field '" + path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            .joined(separator: ".").replacingOccurrences(of: ".[", with: "[") + "'"
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case let .typeMismatch(type, c):
            return "invalid JSON at \(field(c.codingPath)): expected \(type) (\(c.debugDescription))"
        case let .valueNotFound(type, c):
            return "invalid JSON at \(field(c.codingPath)): a \(type) is required, found null"
        case let .keyNotFound(key, c):
            return "invalid JSON at \(field(c.codingPath)): missing field '\(key.stringValue)'"
        case let .dataCorrupted(c):
            return "invalid JSON at \(field(c.codingPath)): \(c.debugDescription)"
        @unknown default:
            return "invalid JSON: \(e.localizedDescription)"
        }
    }

    static func describe(_ e: EncodingError) -> String {
        switch e {
        case let .invalidValue(value, c):
            let nonFinite = (value as? Double).map { !$0.isFinite } ?? (value as? Float).map { !$0.isFinite } ?? false
            return "cannot write \(value) at \(field(c.codingPath))"
                + (nonFinite ? ": JSON has no NaN or infinity (a computation produced a non-finite number)" : ": \(c.debugDescription)")
        @unknown default:
            return "cannot write JSON: \(e.localizedDescription)"
        }
    }

    static func describe(_ ns: NSError) -> String {
        let path = ns.userInfo[NSFilePathErrorKey] as? String ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        let what: String
        switch (ns.domain, ns.code) {
        case (NSCocoaErrorDomain, CocoaError.fileWriteFileExists.rawValue): what = "already exists"
        case (NSCocoaErrorDomain, CocoaError.fileNoSuchFile.rawValue), (NSCocoaErrorDomain, CocoaError.fileReadNoSuchFile.rawValue):
            what = "no such file or directory"
        case (NSCocoaErrorDomain, CocoaError.fileReadNoPermission.rawValue), (NSCocoaErrorDomain, CocoaError.fileWriteNoPermission.rawValue):
            what = "permission denied"
        case (NSCocoaErrorDomain, CocoaError.fileWriteOutOfSpace.rawValue): what = "no space left on the device"
        case (NSCocoaErrorDomain, CocoaError.fileWriteVolumeReadOnly.rawValue): what = "the file system is read-only"
        case (NSPOSIXErrorDomain, _): what = String(cString: strerror(Int32(ns.code)))
        default: what = ns.localizedDescription
        }
        return path.map { "\($0): \(what)" } ?? what
    }
}
