import Foundation

/// What a `--model` / `lora pull` argument names:
/// - a file URL (`https://host/x.gguf`, `file:///m/x.gguf`), optionally pinned: `...x.gguf#sha256=<hex>`;
/// - a Hugging Face-style repository root (`https://host/org/name`), whose files live at
///   `{root}/resolve/{revision}/{file}` (revision `main` unless given);
/// - `{root}/resolve/{revision}/{file}` (one file) or `{root}/resolve/{revision}` (the repository at a revision).
public struct ModelSpec: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// One file, saved under `name`.
        case file(url: String, name: String)
        /// A repository root and revision.
        case repository(root: String, revision: String)
    }

    public let kind: Kind
    /// The sha256 pinned with `#sha256=<hex>` (lowercase), if any.
    public let pinnedSHA256: String?
    /// The spec without its fragment: what identifies the model in the cache.
    public let canonical: String

    /// File extensions that make a URL one file rather than a repository root
    /// (repository names may contain dots, e.g. `Qwen2.5-0.5B`).
    static let fileExtensions: Set<String> = ["gguf", "safetensors", "bin", "json", "jinja", "model", "txt", "pt", "pth"]

    public static func parse(_ spec: String) throws -> ModelSpec {
        let trimmed = spec.trimmingCharacters(in: .whitespaces)
        var base = trimmed
        var pinned: String?
        if let hash = trimmed.firstIndex(of: "#") {
            base = String(trimmed[..<hash])
            let fragment = trimmed[trimmed.index(after: hash)...]
            guard fragment.hasPrefix("sha256=") else {
                throw FetchError.invalidSpec(spec: spec, reason: "the only fragment understood is #sha256=<64 hex digits>")
            }
            let hex = String(fragment.dropFirst("sha256=".count))
            guard SHA256Hex.isValid(hex) else {
                throw FetchError.invalidSpec(spec: spec, reason: "'\(hex)' is not a sha256 (64 hex digits)")
            }
            pinned = hex.lowercased()
        }
        guard let components = URLComponents(string: base), let scheme = components.scheme?.lowercased(),
              ["http", "https", "file"].contains(scheme) else {
            throw FetchError.invalidSpec(spec: spec, reason: "expected an http://, https:// or file:// URL")
        }
        if scheme != "file" && (components.host ?? "").isEmpty {
            throw FetchError.invalidSpec(spec: spec, reason: "the URL has no host")
        }
        let path = components.percentEncodedPath
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !segments.isEmpty else {
            throw FetchError.invalidSpec(spec: spec, reason: "the URL has no path")
        }

        // {root}/resolve/{revision}[/{file}]
        if scheme != "file", let r = segments.lastIndex(of: "resolve"), r > 0, r + 1 < segments.count {
            let root = rootURL(components, segments: segments[..<r])
            let revision = segments[r + 1]
            if r + 2 < segments.count {
                let name = try fileName(segments.last!, spec: spec)
                return ModelSpec(kind: .file(url: base, name: name), pinnedSHA256: pinned, canonical: base)
            }
            guard pinned == nil else {
                throw FetchError.invalidSpec(spec: spec, reason: "#sha256= pins one file, not a repository")
            }
            return ModelSpec(kind: .repository(root: root, revision: revision), pinnedSHA256: nil,
                             canonical: "\(root)/resolve/\(revision)")
        }

        let last = segments.last!
        let ext = (last as NSString).pathExtension.lowercased()
        if scheme == "file" || fileExtensions.contains(ext) {
            let name = try fileName(last, spec: spec)
            return ModelSpec(kind: .file(url: base, name: name), pinnedSHA256: pinned, canonical: base)
        }
        guard pinned == nil else {
            throw FetchError.invalidSpec(spec: spec, reason: "#sha256= pins one file, not a repository")
        }
        guard components.query == nil else {
            throw FetchError.invalidSpec(spec: spec, reason: "a repository root URL takes no query string")
        }
        let root = rootURL(components, segments: segments[...])
        return ModelSpec(kind: .repository(root: root, revision: "main"), pinnedSHA256: nil,
                         canonical: "\(root)/resolve/main")
    }

    /// The URL of `file` in a repository.
    public static func fileURL(root: String, revision: String, file: String) -> String {
        let escaped = file.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? file
        return "\(root)/resolve/\(revision)/\(escaped)"
    }

    /// The decoded last path segment, usable as a file name in a snapshot directory.
    private static func fileName(_ segment: String, spec: String) throws -> String {
        let name = (segment.removingPercentEncoding ?? segment).replacingOccurrences(of: "/", with: "_")
        guard !name.isEmpty, name != ".", name != ".." else {
            throw FetchError.invalidSpec(spec: spec, reason: "'\(segment)' is not a file name")
        }
        return name
    }

    private static func rootURL(_ c: URLComponents, segments: ArraySlice<String>) -> String {
        var root = URLComponents()
        root.scheme = c.scheme
        root.user = c.user
        root.password = c.password
        root.host = c.host
        root.port = c.port
        root.percentEncodedPath = "/" + segments.joined(separator: "/")
        return root.string ?? ""
    }
}
