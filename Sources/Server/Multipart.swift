import Foundation

/// A `multipart/form-data` body (RFC 7578; parts delimited as RFC 2046 §5.1.1 says: CRLF, `--`,
/// the boundary), read whole: each part's name, filename and bytes.
struct MultipartForm {
    struct Part {
        let name: String
        let filename: String?
        let bytes: [UInt8]
    }

    let parts: [Part]

    func part(_ name: String) -> Part? { parts.first { $0.name == name } }

    /// The boundary of a `multipart/form-data; boundary=...` content type (quoted or not).
    static func boundary(contentType: String?) throws -> String {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else {
            throw APIError.badRequest("Expected Content-Type multipart/form-data with the fields `file` and `purpose`, got "
                + (contentType.map { "'\($0)'" } ?? "none"), param: nil, code: "invalid_content_type")
        }
        for param in contentType.split(separator: ";").dropFirst() {
            let kv = param.trimmingCharacters(in: .whitespaces)
            guard kv.lowercased().hasPrefix("boundary=") else { continue }
            var b = String(kv.dropFirst("boundary=".count))
            if b.hasPrefix("\""), b.hasSuffix("\""), b.count >= 2 { b = String(b.dropFirst().dropLast()) }
            if (1...70).contains(b.utf8.count) { return b }
        }
        throw APIError.badRequest("The multipart/form-data Content-Type has no usable boundary parameter", param: nil,
                                  code: "invalid_content_type")
    }

    init(_ body: [UInt8], boundary: String) throws {
        func bad(_ why: String) -> APIError { .badRequest("Malformed multipart/form-data body: \(why)", param: nil, code: "invalid_multipart") }
        let delimiter = Array(("--" + boundary).utf8)
        let crlf: [UInt8] = [13, 10]
        guard var pos = Self.find(delimiter, in: body, from: 0) else { throw bad("no boundary line '--\(boundary)'") }
        var parts: [Part] = []
        while true {
            pos += delimiter.count
            // "--" after a delimiter ends the body.
            if pos + 1 < body.count, body[pos] == 45, body[pos + 1] == 45 { break }
            // Skip transport padding to the end of the boundary line.
            guard let lineEnd = Self.find(crlf, in: body, from: pos) else { throw bad("a boundary line does not end") }
            pos = lineEnd + 2
            guard let headerEnd = Self.find(crlf + crlf, in: body, from: pos) else { throw bad("a part's headers do not end") }
            let headers = String(decoding: body[pos..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let next = Self.find(crlf + delimiter, in: body, from: contentStart) else {
                throw bad("a part is not closed by '--\(boundary)'")
            }
            var name: String?
            var filename: String?
            for line in headers.components(separatedBy: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                name = Self.attribute("name", in: line)
                filename = Self.attribute("filename", in: line)
            }
            guard let name else { throw bad("a part has no Content-Disposition name") }
            parts.append(Part(name: name, filename: filename, bytes: Array(body[contentStart..<next])))
            pos = next + 2
        }
        self.parts = parts
    }

    /// `name="value"` (or unquoted) in a Content-Disposition line.
    static func attribute(_ key: String, in line: String) -> String? {
        for piece in line.split(separator: ";").dropFirst() {
            let kv = piece.trimmingCharacters(in: .whitespaces)
            guard let eq = kv.firstIndex(of: "="), kv[..<eq].lowercased() == key else { continue }
            var v = String(kv[kv.index(after: eq)...])
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            return v.replacingOccurrences(of: "\\\"", with: "\"")
        }
        return nil
    }

    /// First index of `needle` in `haystack` at or after `from`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        let first = needle[0]
        var i = from
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}
