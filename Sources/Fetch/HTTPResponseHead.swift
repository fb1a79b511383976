import Foundation

/// The status line and header fields of one response. A redirected request yields one head per hop.
struct HTTPResponseHead {
    var status: Int
    var fields: [(name: String, value: String)] = []

    /// The last value of a header field, matched case-insensitively.
    subscript(_ name: String) -> String? {
        fields.last(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame })?.value
    }

    var contentLength: Int64? { self["Content-Length"].flatMap { Int64($0) } }

    /// A strong ETag usable in If-Range (weak validators may not be used for ranges, RFC 9110 13.1.5).
    var strongETag: String? {
        guard let e = self["ETag"], !e.hasPrefix("W/") else { return nil }
        return e
    }

    var lastModified: String? { self["Last-Modified"] }

    /// `Content-Range: bytes a-b/total` -> (a, total?); nil when absent or not a byte range.
    var contentRange: (start: Int64, total: Int64?)? {
        guard let v = self["Content-Range"]?.trimmingCharacters(in: .whitespaces), v.hasPrefix("bytes ") else {
            return nil
        }
        let spec = v.dropFirst("bytes ".count)
        let parts = spec.split(separator: "/", maxSplits: 1)
        guard let range = parts.first, let dash = range.firstIndex(of: "-"),
              let start = Int64(range[range.startIndex..<dash]) else { return nil }
        let total = parts.count > 1 ? Int64(parts[1]) : nil
        return (start, total)
    }
}

/// Checksums that Hugging Face-style servers attach to responses.
enum LinkedHeaders {
    /// `X-Linked-Etag` is the sha256 of an LFS file when it is 64 hex digits (it may be quoted or weak);
    /// anything else (a git SHA-1, an opaque tag) is not a sha256. Source: huggingface_hub
    /// file_download.py reads X-Linked-Etag before ETag for the "commit hash / etag" of LFS files.
    static func sha256(fromLinkedETag value: String?) -> String? {
        guard var v = value?.trimmingCharacters(in: .whitespaces) else { return nil }
        if v.hasPrefix("W/") { v.removeFirst(2) }
        v = v.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return SHA256Hex.isValid(v) ? v.lowercased() : nil
    }
}

enum SHA256Hex {
    static func isValid(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }
}
