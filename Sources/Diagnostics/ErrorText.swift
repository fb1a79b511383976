import Foundation

/// Swift's and Foundation's own errors in words a user can act on, for every message that wraps
/// another error (`"unreadable: \(…)"`): `DecodingError.dataCorrupted(Context(codingPath: …))`,
/// `EncodingError.invalidValue`, `Error Domain=NSCocoaErrorDomain Code=516` or an underlying
/// parser enum become what went wrong, with the field, path or byte offset they carry. The
/// project's typed errors already read well and pass through as their description.
public enum ErrorText {
    /// The error as a sentence naming what it carries (field, file, offset).
    public static func describe(_ error: Error) -> String {
        switch error {
        case let e as DecodingError: return describe(e)
        case let e as EncodingError: return describe(e)
        default:
            let ns = error as NSError
            // Swift errors bridge to NSError with their type's name as the domain; only Foundation's own
            // domains carry Foundation's wording.
            if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain { return describe(ns) }
            return "\(error)"
        }
    }

    /// `describe` for an error decoding `data` as JSON: when the bytes are not JSON at all, the
    /// decoder only says "The given data was not valid JSON", so the syntax error is located by
    /// Foundation's JSONSerialization, which names the character ("Invalid value around character 5").
    public static func describe(_ error: Error, decoding data: Data) -> String {
        if case let DecodingError.dataCorrupted(c) = error, c.codingPath.isEmpty {
            do {
                _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            } catch {
                let ns = error as NSError
                if let detail = ns.userInfo[NSDebugDescriptionErrorKey] as? String, !detail.isEmpty {
                    return "not valid JSON: " + detail
                }
            }
        }
        return describe(error)
    }

    /// Whether `error` is one `describe` rewords (a Foundation or Codable error).
    public static func isFoundationError(_ error: Error) -> Bool {
        if error is DecodingError || error is EncodingError { return true }
        let ns = error as NSError
        return ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain
    }

    /// `field 'a.b[2]'`, or `the top level`.
    static func field(_ path: [CodingKey]) -> String {
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
            return "invalid JSON at \(field(c.codingPath)): " + corruption(c)
        @unknown default:
            return "invalid JSON: \(e.localizedDescription)"
        }
    }

    /// What a dataCorrupted context says: Foundation's parser puts the place ("around line 1,
    /// column 5" or "at character 7") in its underlying NSError's debug description, and
    /// "The given data was not valid JSON." in the context's.
    static func corruption(_ c: DecodingError.Context) -> String {
        if let underlying = c.underlyingError {
            let ns = underlying as NSError
            if let detail = ns.userInfo[NSDebugDescriptionErrorKey] as? String, !detail.isEmpty { return detail }
            if ns.domain != NSCocoaErrorDomain && ns.domain != NSPOSIXErrorDomain {
                // A Swift parser error enum (`unexpectedCharacter(ascii: 123, characterIndex: 0)`): keep
                // the context's sentence and say where, when it knows.
                return c.debugDescription
            }
            return ns.localizedDescription
        }
        return c.debugDescription
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
        default:
            if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
                what = String(cString: strerror(Int32(underlying.code)))
            } else if let path, let file = fileInTheWay(path) {
                // Foundation reports creating a directory below a regular file as "error 512" with no cause.
                what = "\(file) is a file, not a directory"
            } else if ns.localizedDescription.contains(ns.domain) {
                what = "the file operation failed (Foundation error \(ns.code))"
            } else {
                what = ns.localizedDescription
            }
        }
        return path.map { "\($0): \(what)" } ?? what
    }

    /// The nearest existing ancestor of `path` (or `path` itself) when it is not a directory.
    static func fileInTheWay(_ path: String) -> String? {
        var url = URL(fileURLWithPath: path).deletingLastPathComponent()
        while url.path != "/" {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
                return isDirectory.boolValue ? nil : url.path
            }
            url = url.deletingLastPathComponent()
        }
        return nil
    }
}
