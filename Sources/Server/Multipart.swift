import Foundation
import MultipartKit
import NIOCore

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

    /// Parsed with vapor/multipart-kit's `MultipartParser` (parts delimited as RFC 2046 §5.1.1
    /// says); this type adds what the upload route needs: each part's name and filename from its
    /// Content-Disposition, and errors for a body without parts or with a part left open.
    init(_ body: [UInt8], boundary: String) throws {
        func bad(_ why: String) -> APIError { .badRequest("Malformed multipart/form-data body: \(why)", param: nil, code: "invalid_multipart") }
        let parser = MultipartParser(boundary: boundary)
        var parts: [Part] = []
        var headers: [(name: String, value: String)] = []
        var bytes: [UInt8] = []
        var open = false
        var unnamed = false
        parser.onHeader = { name, value in open = true; headers.append((name, value)) }
        parser.onBody = { buffer in
            open = true
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        parser.onPartComplete = {
            defer { headers = []; bytes = []; open = false }
            let disposition = headers.last { $0.name.lowercased() == "content-disposition" }?.value
            guard let disposition, let name = Self.attribute("name", in: disposition) else { unnamed = true; return }
            parts.append(Part(name: name, filename: Self.attribute("filename", in: disposition), bytes: bytes))
        }
        do {
            try parser.execute(body)
        } catch {
            throw bad("a part's headers are not \"Name: value\" lines ended by CRLF")
        }
        if unnamed { throw bad("a part has no Content-Disposition name") }
        if open { throw bad("a part is not closed by '--\(boundary)'") }
        if parts.isEmpty { throw bad("no part delimited by '--\(boundary)'") }
        self.parts = parts
    }

    /// `name="value"` (or unquoted) in a Content-Disposition value (`form-data; name="file"; filename="a.jsonl"`).
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
}
