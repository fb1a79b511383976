import Foundation

/// One file of a model, present and verified in the cache.
public struct FetchedFile: Sendable, Equatable {
    /// The file's name in the model (e.g. `config.json`, `model-00001-of-00002.safetensors`).
    public let name: String
    public let url: String
    public let sha256: String
    public let size: Int64
    /// The content-addressed blob (`<cache>/blobs/sha256/<hex>`).
    public let blob: URL
    /// What the sha256 was checked against: "model spec", "X-Linked-Etag", "sidecar", or nil when the
    /// source offered nothing to check (the hash is still computed and recorded).
    public let verifiedBy: String?
    /// True when no body was downloaded (a cache hit).
    public let fromCache: Bool
}

/// A fetched model: the path a model loader opens, and its files.
public struct FetchedModel: Sendable, Equatable {
    /// The GGUF (or single) file, or the directory holding a repository's files under their names.
    public let path: URL
    public let files: [FetchedFile]
}
